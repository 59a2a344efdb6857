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
// in place of upstream's pkg/generator/register/register.go (see ../../../README.md).
// Upstream's file is this package clause plus one blank import per generator (ECR, ACR,
// GCR, STS, Quay, GitHub, Grafana, Vault, password, ...), each of which registers itself
// in its init. meshfleet renders no generator, so none is registered: an ExternalSecret
// that referred to one would be told its kind is unknown.
package register
