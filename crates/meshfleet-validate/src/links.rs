//! Rules for links: endpoints that exist, no self-links or duplicates, the topology
//! shorthands, gateway-mode targets with a usable gateway, selectors, and the length
//! budget of mirrored service names.

use std::collections::{HashMap, HashSet};

use meshfleet_fleet::defaults;
use meshfleet_fleet::diagnostic::Finding;
use meshfleet_fleet::located::Located;
use meshfleet_fleet::model::LinkMode;
use meshfleet_fleet::selector;

use super::{Ctx, LinkSelectors, Parsed, Rule};

/// Longest Kubernetes Service name.
const SERVICE_NAME_LIMIT: usize = 63;
/// Below this many characters left for `<svc>` in `<svc>-<target>`, warn.
const MIRROR_BUDGET_WARNING: usize = 20;

pub(super) fn check(ctx: &Ctx<'_>, parsed: &mut Parsed, out: &mut Vec<Finding>) {
    topology(ctx, out);
    link_credentials(ctx, parsed, out);
    let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
    for link in ctx.links {
        for end in [&link.source, &link.target] {
            if ctx.cluster(&end.value).is_none() {
                let hint = ctx.unknown_cluster_hint(&end.value);
                out.push(Finding::error(
                    Rule::LinkUnknownCluster,
                    end.at,
                    format!(
                        "link `{}` names cluster `{}`, which the fleet does not have",
                        link.label(),
                        end.value
                    ),
                    hint,
                ));
            }
        }
        if link.source.value == link.target.value {
            out.push(Finding::error(
                Rule::SelfLink,
                link.target.at,
                format!(
                    "link `{}` links cluster `{}` to itself",
                    link.label(),
                    link.source.value
                ),
                "a link mirrors services from another cluster; remove it or change its target",
            ));
        }
        if link.explicit {
            let key = (link.source.value.as_str(), link.target.value.as_str());
            if let Some(first_line) = seen.get(&key) {
                out.push(Finding::error(
                    Rule::DuplicateLink,
                    link.at,
                    format!(
                        "link `{}` is declared twice (first at line {first_line})",
                        link.label()
                    ),
                    "remove one of them; one link per source and target",
                ));
            } else {
                seen.insert(key, link.at.line);
            }
        }
        selectors(link, parsed, out);
    }
    let mut budget_checked = HashSet::new();
    for link in ctx.valid_links() {
        let Some(target) = ctx.cluster(&link.target.value) else {
            continue;
        };
        if link.mode.value == LinkMode::Gateway {
            let gateway = target
                .gateway
                .as_ref()
                .filter(|g| g.enabled.as_ref().is_none_or(|e| e.value));
            match gateway {
                None => out.push(Finding::error(Rule::GatewayMissing,
                    link.mode.at.or(link.target.at),
                    format!(
                        "link `{}` uses gateway mode, but cluster `{}` has no enabled gateway",
                        link.label(),
                        target.name.value
                    ),
                    format!(
                        "add a `gateway:` with `addresses` to cluster `{}`, or set `mode: remote-discovery` on this link",
                        target.name.value
                    ),
                )),
                Some(g) if g.addresses.is_empty() => out.push(Finding::error(Rule::GatewayAddressesMissing,
                    g.at,
                    format!(
                        "the gateway of cluster `{}` has no `addresses`, but link `{}` dials it",
                        target.name.value,
                        link.label()
                    ),
                    "list the IPs or DNS names other clusters reach the gateway at; Links are rendered offline",
                )),
                Some(_) => {}
            }
        }
        if budget_checked.insert(target.name.value.as_str()) {
            mirror_budget(
                target.link_name.as_ref().unwrap_or(&target.name),
                &target.name.value,
                out,
            );
        }
    }
}

fn topology(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let Some(topology) = &ctx.fleet.spec.topology else {
        return;
    };
    let full_mesh = topology.full_mesh.as_ref().is_some_and(|m| m.value);
    if let Some(hs) = &topology.hub_and_spoke {
        if full_mesh {
            out.push(Finding::error(
                Rule::Topology,
                topology.at,
                "`topology` sets both `hubAndSpoke` and `fullMesh`",
                "choose one shorthand; add single links under `spec.links`",
            ));
        }
        if ctx.cluster(&hs.hub.value).is_none() {
            let hint = ctx.unknown_cluster_hint(&hs.hub.value);
            out.push(Finding::error(
                Rule::LinkUnknownCluster,
                hs.hub.at,
                format!("hub `{}` is not a cluster of the fleet", hs.hub.value),
                hint,
            ));
        }
    }
}

fn selectors(link: &meshfleet_fleet::links::DeclaredLink, parsed: &mut Parsed, out: &mut Vec<Finding>) {
    let fields = [
        (
            "selector",
            link.selector.as_ref(),
            defaults::SELECTOR,
            link.mode.value == LinkMode::Gateway,
        ),
        (
            "remoteDiscoverySelector",
            link.remote_discovery_selector.as_ref(),
            defaults::REMOTE_DISCOVERY_SELECTOR,
            true,
        ),
        (
            "federatedServiceSelector",
            link.federated_service_selector.as_ref(),
            defaults::FEDERATED_SERVICE_SELECTOR,
            true,
        ),
    ];
    let mut effective = Vec::with_capacity(fields.len());
    for (field, query, default, used) in fields {
        let Some(query) = query else {
            // meshfleet's own defaults parse; a failure would be a bug, and then the
            // link has no selectors to plan with (the plan refuses it, never guesses).
            effective.push(selector::parse_label_query(default).ok());
            continue;
        };
        let result = selector::parse_label_query(&query.value);
        match &result {
            Err(why) => out.push(Finding::error(Rule::Selector,
                query.at,
                format!("`{field}` of link `{}`: {why}", link.label()),
                "write a Kubernetes label query such as `mirror.linkerd.io/exported=true` or `team in (a,b)`",
            )),
            Ok(s) if selector::is_empty(s) => out.push(Finding::warning(Rule::SelectorEmpty,
                query.at,
                format!("`{field}` of link `{}` is empty, and Linkerd treats an empty selector as matching nothing", link.label()),
                "remove the field to use the default, or write a label query",
            )),
            Ok(_) if !used => out.push(Finding::warning(Rule::SelectorIgnored,
                query.at,
                format!("`{field}` has no effect on the remote-discovery link `{}`", link.label()),
                "remote-discovery links mirror what `remoteDiscoverySelector` selects; remove `selector`",
            )),
            Ok(_) => {}
        }
        effective.push(result.ok());
    }
    let mut effective = effective.into_iter().flatten();
    if let (Some(gateway), Some(remote_discovery), Some(federated)) =
        (effective.next(), effective.next(), effective.next())
    {
        parsed.selectors.insert(
            (link.source.value.clone(), link.target.value.clone()),
            LinkSelectors {
                gateway,
                remote_discovery,
                federated,
            },
        );
    }
}

/// `spec.secrets.linkCredentials`: each generation a whole number (0 up) of a link the
/// fleet declares, `<source>-to-<target>`; the rotation of declared links only, and
/// `retiring` only a raised generation. Parsed into [`Parsed::link_credentials`].
fn link_credentials(ctx: &Ctx<'_>, parsed: &mut Parsed, out: &mut Vec<Finding>) {
    let Some(credentials) = ctx
        .fleet
        .spec
        .secrets
        .as_ref()
        .and_then(|s| s.link_credentials.as_ref())
    else {
        return;
    };
    let ids: HashSet<String> = ctx
        .links
        .iter()
        .map(|l| format!("{}-to-{}", l.source.value, l.target.value))
        .collect();
    for (id, generation) in &credentials.value.generations {
        // Below u32::MAX: a rotation moves a link to the next generation.
        match u32::try_from(generation.value).ok().filter(|n| *n < u32::MAX) {
            None => out.push(Finding::error(
                Rule::LinkCredentials,
                generation.at,
                format!(
                    "generation `{}` of link `{id}` is not a whole number from 0",
                    generation.value
                ),
                "leave the generations to `meshfleet secrets sync --rotate`, which writes them",
            )),
            Some(_) if !ids.contains(id) => out.push(Finding::error(
                Rule::LinkCredentials,
                generation.at,
                format!("`{id}` is not a link of the fleet"),
                "keys are `<source>-to-<target>` of declared links; remove this one",
            )),
            // Generation 0 is what an unlisted link uses: left out, as the editor writes it.
            Some(0) => {}
            Some(n) => {
                parsed.link_credentials.generations.insert(id.clone(), n);
            }
        }
    }
    let Some(rotation) = &credentials.value.rotation else {
        return;
    };
    parsed.link_credentials.rotation = Some((
        rotation.value.links.iter().map(|l| l.value.clone()).collect(),
        rotation.value.phase.value,
    ));
    for link in &rotation.value.links {
        if !ids.contains(&link.value) {
            out.push(Finding::error(
                Rule::LinkCredentials,
                link.at,
                format!("the rotation names `{}`, which is not a link of the fleet", link.value),
                "`meshfleet secrets sync --rotate` writes the rotation; remove this entry, or the rotation block to abandon it before `retiring`",
            ));
        } else if rotation.value.phase.value == meshfleet_fleet::model::RotationPhase::Retiring
            && !parsed.link_credentials.generations.contains_key(&link.value)
        {
            out.push(Finding::error(
                Rule::LinkCredentials,
                link.at,
                format!(
                    "link `{}` is `retiring` at generation 0: there is no earlier account to retire",
                    link.value
                ),
                "`retiring` follows a `granting` run that raised the link's generation; let `meshfleet secrets sync --rotate` write the phases",
            ));
        }
    }
}

fn mirror_budget(link_name: &Located<String>, cluster: &str, out: &mut Vec<Finding>) {
    let len = link_name.value.len();
    // `probe-<n>` is a Service the chart creates per link, so it must fit too.
    if len + "probe-".len() > SERVICE_NAME_LIMIT {
        out.push(Finding::error(Rule::MirrorNameBudget,
            link_name.at,
            format!(
                "link name `{}` of cluster `{cluster}` is {len} characters; the chart's Service `probe-{}` would exceed 63",
                link_name.value, link_name.value
            ),
            "set a shorter `linkName` (it also suffixes every mirrored service)",
        ));
        return;
    }
    let room = SERVICE_NAME_LIMIT.saturating_sub(len + 1);
    if room < MIRROR_BUDGET_WARNING {
        out.push(Finding::warning(Rule::MirrorNameBudget,
            link_name.at,
            format!(
                "mirrors are named `<service>-{}`, so services of cluster `{cluster}` longer than {room} characters cannot be mirrored",
                link_name.value
            ),
            "set a shorter `linkName` for this cluster",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{base_with, findings, rules};

    #[test]
    fn link_ends_exist_differ_and_are_not_repeated() {
        let unknown = findings(&base_with(
            "{source: studio, target: pro}",
            "{source: studio, target: prod}",
        ));
        assert_eq!(unknown.len(), 1, "{unknown:#?}");
        assert_eq!(unknown[0].rule, "link-unknown-cluster");
        assert!(
            unknown[0].hint.contains("did you mean `pro`"),
            "{}",
            unknown[0].hint
        );
        assert_eq!(
            rules(&base_with(
                "{source: pro, target: studio}",
                "{source: pro, target: pro}"
            )),
            ["self-link"]
        );
        assert_eq!(
            rules(&base_with(
                "{source: pro, target: studio}",
                "{source: studio, target: pro}"
            )),
            ["duplicate-link"]
        );
    }

    #[test]
    fn gateway_mode_targets_need_a_gateway_with_addresses() {
        assert_eq!(
            rules(&base_with(
                "      gateway:\n        addresses: [studio.example]\n",
                "      gateway: {enabled: false}\n"
            )),
            ["gateway-missing"]
        );
        let remote = base_with(
            "      gateway:\n        addresses: [studio.example]\n",
            "      gateway: {enabled: false}\n",
        )
        .replace(
            "{source: pro, target: studio}",
            "{source: pro, target: studio, mode: remote-discovery}",
        );
        assert!(rules(&remote).is_empty(), "{:#?}", findings(&remote));
    }

    #[test]
    fn selectors_are_label_queries() {
        assert_eq!(
            rules(&base_with(
                "{source: studio, target: pro}",
                "{source: studio, target: pro, selector: 'a=b=c'}"
            )),
            ["selector"]
        );
    }
}
