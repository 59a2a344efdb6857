/*
Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// testenv/run builds External Secrets v0.16.2 from its own module source with this file
// in place of upstream's pkg/provider/register/register.go (see ../../../README.md).
// Upstream's file is this package clause plus one blank import per provider, each of
// which registers itself with the controllers in its init; the controllers import this
// package. This copy lists only the provider meshfleet renders, Vault (ClusterSecretStore
// `spec.provider.vault`), so the SDKs of the other ~30 providers are not built.
package register

// packages imported here are registered to the controller schema.

import (
	_ "github.com/external-secrets/external-secrets/pkg/provider/vault"
)
