//! The SVG: a title, the drawing of [`super::layout`], and a legend that wraps to the
//! drawing's width, on a canvas fitted to all three.
//!
//! Every box is sized to its text (text wider than [`MAX_TEXT`] is shortened in the
//! middle, and the full value is in the box's tooltip). Elements carry stable ids so
//! that tests, and people, can find them: `cluster-N` groups hold `box-N` (the drawn
//! box), `box-N-ring` (the second border of a cluster with a gateway) and `box-N-line-K`
//! (its lines of text); `edge-E-S-T` is link E from its source S to its target T (its
//! path runs that way and the arrowhead is at T; in the star layout the one arrowhead
//! is at the hub, on the trunk), `edgelabel-E`
//! its label, `bus` the star layout's shared wiring, `legend-K` the legend's entries.

use std::fmt::Write as _;

use super::dot::health_colours;
use super::layout::{self, Layout, Point, Rect, Shape, Spec};
use super::metrics::{FONT_FAMILY, Font};
use super::{FleetGraph, FleetHealth, Health, cluster_caption, xml};
use meshfleet_fleet::model::LinkMode;
use meshfleet_live::check::Status;

/// Widest line of text under a cluster's name; longer text is shortened (full value in
/// the tooltip). Names are never shortened: a DNS-1123 label fits in 63 characters.
const MAX_TEXT: f64 = 300.0;
const MAX_NAME: f64 = 640.0;
/// Offset of a gateway cluster's second border.
const RING: f64 = 4.0;
/// Padding between a box's border and its text.
const PAD_X: f64 = 10.0;
const PAD_Y: f64 = 6.0;
/// Links get a text label only when there are few of them (style and tooltip always).
const MAX_LABELS: usize = 12;
/// Above this many links, lines and arrowheads get thinner.
const DENSE: usize = 150;
/// Canvas margin.
const MARGIN: f64 = 16.0;

const INK: &str = "#334155";
const MUTED: &str = "#475569";

fn line_height(font: Font) -> f64 {
    (font.size * 1.3).ceil()
}

/// One cluster's box: its lines of text and tooltip.
struct ClusterBox {
    lines: Vec<(String, Font)>,
    tooltip: String,
    width: f64,
    height: f64,
}

impl ClusterBox {
    fn new(graph: &FleetGraph<'_>, index: usize, health: Option<&Health>) -> Self {
        let c = graph.nodes[index];
        let mut full: Vec<(String, Font)> = Vec::new();
        let name = match health {
            Some(h) => format!("{} {}", h.symbol(), c.name),
            None => c.name.clone(),
        };
        full.push((name, Font::NAME));
        let exports = graph.exports_to(index);
        let mirrors = graph.mirrors(index);
        if graph.is_hub(index) {
            full.push((
                format!("hub · exports to {exports} cluster{}", plural(exports)),
                Font::CAPTION,
            ));
        }
        full.push((cluster_caption(c), Font::CAPTION));
        if let Some(h) = health {
            full.push((h.headline(), Font::CAPTION));
        }
        let mut tooltip = vec![c.name.clone()];
        if let Some(gw) = &c.gateway {
            tooltip.push(format!(
                "gateway {} ({:?}), port {}",
                gw.addresses.join(", "),
                gw.service_type,
                gw.dialled_port()
            ));
        } else {
            tooltip.push("no gateway: never a target of a gateway-mode link".to_string());
        }
        tooltip.push(format!(
            "exports services to {exports} cluster{}, mirrors {mirrors}",
            plural(exports)
        ));
        if let Some(h) = health {
            tooltip.push(format!("{} {}", h.symbol(), h.summary()));
            tooltip.extend(h.problem_lines());
        }
        let lines: Vec<(String, Font)> = full
            .into_iter()
            .enumerate()
            .map(|(k, (text, font))| {
                let max = if k == 0 { MAX_NAME } else { MAX_TEXT };
                (font.fit(&text, max).into_owned(), font)
            })
            .collect();
        let text_w = lines.iter().map(|(t, f)| f.width(t)).fold(0.0, f64::max);
        let text_h: f64 = lines.iter().map(|(_, f)| line_height(*f)).sum();
        Self {
            width: (text_w + 2.0 * (RING + PAD_X)).max(110.0).ceil(),
            height: (text_h + 2.0 * (RING + PAD_Y)).ceil(),
            lines,
            tooltip: tooltip.join("\n"),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A link's label text.
fn label_text(mode: LinkMode, health: Option<&Health>) -> String {
    match health {
        Some(h) => format!("{} {}", h.symbol(), mode.as_str()),
        None => mode.as_str().to_string(),
    }
}

fn label_size(text: &str) -> (f64, f64) {
    let f = Font::LABEL;
    (
        f.width(text).ceil() + 6.0,
        (f.ascent() + f.descent()).ceil() + 2.0,
    )
}

/// Draw the graph.
pub(super) fn draw(graph: &FleetGraph<'_>, health: Option<&FleetHealth>) -> String {
    let cluster_health: Vec<Option<Health>> = graph
        .nodes
        .iter()
        .map(|c| health.map(|h| h.cluster(&c.name)))
        .collect();
    let link_health: Vec<Option<Health>> = graph
        .edges
        .iter()
        .map(|e| health.map(|h| h.link(&e.link.source, &e.link.target)))
        .collect();
    let boxes: Vec<ClusterBox> = (0..graph.nodes.len())
        .map(|i| ClusterBox::new(graph, i, cluster_health[i].as_ref()))
        .collect();
    let labelled = graph.edges.len() <= MAX_LABELS;
    let labels: Vec<String> = graph
        .edges
        .iter()
        .zip(&link_health)
        .map(|(e, h)| label_text(e.mode(), h.as_ref()))
        .collect();
    let spec = Spec {
        boxes: boxes.iter().map(|b| (b.width, b.height)).collect(),
        // The layouts place links by the way services flow: (exporting, mirroring).
        links: graph.edges.iter().map(|e| (e.target, e.source)).collect(),
        hub: graph.hub,
        labels: labels.iter().map(|t| labelled.then(|| label_size(t))).collect(),
    };
    let layout = layout::layout(&spec);
    let title = title(graph, health);
    let legend = Legend::new(graph, health.is_some(), layout.width.max(560.0));
    let inner_w = layout.width.max(legend.width).max(Font::TITLE.width(&title));
    let width = (inner_w + 2.0 * MARGIN).ceil();
    let title_h = line_height(Font::TITLE);
    let origin = Point::new(MARGIN + (inner_w - layout.width) / 2.0, MARGIN + title_h + 14.0);
    let legend_y = origin.y + layout.height + 22.0;
    let height = (legend_y + legend.height + MARGIN).ceil();

    let mut out = String::with_capacity(512 + 700 * (graph.nodes.len() + graph.edges.len()));
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"{FONT_FAMILY}\">"
    );
    let _ = writeln!(out, "<title>fleet {}</title>", xml(graph.name));
    out.push_str("<defs>\n");
    let dense = graph.edges.len() > DENSE;
    let head = if dense { 5.0 } else { 9.0 };
    for (id, colour) in marker_colours(health.is_some()) {
        let _ = writeln!(
            out,
            "<marker id=\"arrow-{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"{head}\" markerHeight=\"{head}\" markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\"><path d=\"M0 0 L10 5 L0 10 z\" fill=\"{colour}\"/></marker>"
        );
    }
    out.push_str("</defs>\n");
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    let f = Font::TITLE;
    let _ = writeln!(
        out,
        "<text id=\"title\" x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"{}\" font-weight=\"bold\" fill=\"{INK}\">{}</text>",
        MARGIN + (title_h - f.ascent() - f.descent()) / 2.0 + f.ascent(),
        f.size,
        xml(&title)
    );
    let at = |p: Point| Point::new(p.x + origin.x, p.y + origin.y);
    draw_bus(&mut out, &layout, health.is_some(), dense, at);
    draw_links(&mut out, graph, &layout, &link_health, dense, at);
    for (e, rect) in layout.labels.iter().enumerate() {
        if let Some(rect) = rect {
            let r = Rect {
                x: rect.x + origin.x,
                y: rect.y + origin.y,
                ..*rect
            };
            let f = Font::LABEL;
            let _ = writeln!(
                out,
                "<g id=\"edgelabel-{e}\"><rect id=\"edgelabel-{e}-bg\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.9\"/><text id=\"edgelabel-{e}-text\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{}\" fill=\"{INK}\">{}</text></g>",
                r.x,
                r.y,
                r.w,
                r.h,
                r.centre().x,
                r.y + 1.0 + f.ascent(),
                f.size,
                xml(&labels[e])
            );
        }
    }
    for (i, b) in boxes.iter().enumerate() {
        let outer = layout.boxes[i];
        let outer = Rect {
            x: outer.x + origin.x,
            y: outer.y + origin.y,
            ..outer
        };
        draw_cluster(&mut out, graph, i, b, outer, cluster_health[i].as_ref());
    }
    legend.draw(&mut out, Point::new(MARGIN, legend_y));
    out.push_str("</svg>\n");
    out
}

fn title(graph: &FleetGraph<'_>, health: Option<&FleetHealth>) -> String {
    let (n, l) = (graph.nodes.len(), graph.edges.len());
    let mut title = format!(
        "fleet {} · {n} cluster{} · {l} link{}",
        graph.name,
        plural(n),
        plural(l)
    );
    if let Some(h) = health {
        let (clusters, links) = h.count(Status::Error);
        let (warn_c, warn_l) = h.count(Status::Warning);
        let _ = write!(
            title,
            " · live: {} failing, {} with warnings",
            clusters + links,
            warn_c + warn_l
        );
    }
    title
}

/// Marker ids and colours: one arrowhead per line colour in use.
fn marker_colours(live: bool) -> Vec<(&'static str, &'static str)> {
    let mut markers = vec![("plain", INK)];
    if live {
        markers.extend(
            [Some(Status::Ok), Some(Status::Warning), Some(Status::Error), None]
                .into_iter()
                .map(|status| {
                    let h = Health {
                        status,
                        ..Health::default()
                    };
                    (status_id(status), health_colours(&h).1)
                }),
        );
    }
    markers
}

fn status_id(status: Option<Status>) -> &'static str {
    match status {
        Some(Status::Ok) => "ok",
        Some(Status::Warning) => "warning",
        Some(Status::Error) => "error",
        None => "unchecked",
    }
}

fn points(points: &[Point], at: impl Fn(Point) -> Point) -> String {
    let mut d = String::new();
    for (k, p) in points.iter().enumerate() {
        let p = at(*p);
        let _ = write!(d, "{}{:.1} {:.1}", if k == 0 { "M" } else { " L" }, p.x, p.y);
    }
    d
}

fn draw_bus(out: &mut String, layout: &Layout, live: bool, dense: bool, at: impl Fn(Point) -> Point + Copy) {
    if layout.bus.is_empty() {
        return;
    }
    let d: Vec<String> = layout.bus.iter().map(|p| points(p, at)).collect();
    let colour = if live { "#94a3b8" } else { INK };
    // The trunk starts at the hub: every spoke's link arrives there, so the arrowhead
    // (reversed at a path's start) points into the hub.
    let _ = writeln!(
        out,
        "<path id=\"bus\" d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{}\" marker-start=\"url(#arrow-plain)\"><title>shared wiring: every spoke's link runs along its row, then up the trunk to the hub</title></path>",
        d.join(" "),
        if dense { 1.0 } else { 1.6 }
    );
}

fn draw_links(
    out: &mut String,
    graph: &FleetGraph<'_>,
    layout: &Layout,
    health: &[Option<Health>],
    dense: bool,
    at: impl Fn(Point) -> Point + Copy,
) {
    for (e, edge) in graph.edges.iter().enumerate() {
        let Some(route) = layout.routes.get(e).filter(|r| r.len() >= 2) else {
            continue;
        };
        let (source, target) = (&graph.nodes[edge.source].name, &graph.nodes[edge.target].name);
        let h = health[e].as_ref();
        let (colour, marker) = match h {
            Some(h) => (health_colours(h).1, status_id(h.status)),
            None => (INK, "plain"),
        };
        let base = if dense { 0.8 } else { 1.6 };
        let failing = h.is_some_and(|h| !h.problems.is_empty());
        let width = if failing { base * 2.0 } else { base };
        let dash = match (edge.mode(), dense) {
            (LinkMode::Gateway, _) => String::new(),
            (LinkMode::RemoteDiscovery, false) => " stroke-dasharray=\"7 4\"".to_string(),
            (LinkMode::RemoteDiscovery, true) => " stroke-dasharray=\"4 3\"".to_string(),
        };
        let mut tooltip = format!(
            "{}: {} link; {source} mirrors the services {target} exports, as <service>-{}",
            edge.link.label(),
            edge.mode().as_str(),
            edge.link.link_name()
        );
        if let Some(h) = h {
            let _ = write!(tooltip, "\n{} {}", h.symbol(), h.summary());
            for line in h.problem_lines() {
                tooltip.push('\n');
                tooltip.push_str(&line);
            }
        }
        // Layout routes run the way services flow (target to source); drawn from source
        // to target, with the arrowhead at the target. In the star layout a route is
        // the spoke's stub, and the one arrowhead is the trunk's, at the hub.
        let mut route = route.clone();
        route.reverse();
        let head = if layout.shape == Shape::Star {
            String::new()
        } else {
            format!(" marker-end=\"url(#arrow-{marker})\"")
        };
        let _ = writeln!(
            out,
            "<g id=\"link-{e}\"><title>{}</title><path id=\"edge-{e}-{}-{}\" d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\"{dash}{head}/></g>",
            xml(&tooltip),
            edge.source,
            edge.target,
            points(&route, at)
        );
    }
}

fn draw_cluster(
    out: &mut String,
    graph: &FleetGraph<'_>,
    i: usize,
    b: &ClusterBox,
    outer: Rect,
    health: Option<&Health>,
) {
    let c = graph.nodes[i];
    let hub = graph.is_hub(i);
    let (fill, stroke) = match health {
        Some(h) => health_colours(h),
        None if hub => ("#fde68a", "#b45309"),
        None => ("#e0f2fe", "#0369a1"),
    };
    let stroke_w = if hub { 3.0 } else { 1.2 };
    let _ = write!(out, "<g id=\"cluster-{i}\"><title>{}</title>", xml(&b.tooltip));
    let main = if c.gateway.is_some() {
        let _ = write!(
            out,
            "<rect id=\"box-{i}-ring\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"10\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1\"/>",
            outer.x + 0.5,
            outer.y + 0.5,
            outer.w - 1.0,
            outer.h - 1.0
        );
        outer.inflate(-RING)
    } else {
        outer.inflate(-stroke_w / 2.0)
    };
    let _ = write!(
        out,
        "<rect id=\"box-{i}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"8\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{stroke_w}\"/>",
        main.x, main.y, main.w, main.h
    );
    let mut top = outer.y + RING + PAD_Y;
    let cx = outer.centre().x;
    for (k, (text, font)) in b.lines.iter().enumerate() {
        let lh = line_height(*font);
        let baseline = top + (lh - font.ascent() - font.descent()) / 2.0 + font.ascent();
        let (weight, colour) = if font.bold {
            (" font-weight=\"bold\"", "#0f172a")
        } else {
            ("", MUTED)
        };
        let _ = write!(
            out,
            "<text id=\"box-{i}-line-{k}\" x=\"{cx:.1}\" y=\"{baseline:.1}\" text-anchor=\"middle\" font-size=\"{}\"{weight} fill=\"{colour}\">{}</text>",
            font.size,
            xml(text)
        );
        top += lh;
    }
    out.push_str("</g>\n");
}

/// What a legend entry shows before its text.
#[derive(Debug, Clone, Copy)]
enum Sample {
    None,
    Line { dashed: bool },
    GatewayBox,
    HubBox,
    Status(Option<Status>),
}

/// The legend: entries laid out left to right, wrapping at the drawing's width.
struct Legend {
    entries: Vec<(Sample, String, Point)>,
    width: f64,
    height: f64,
}

const SAMPLE_W: f64 = 30.0;
const ENTRY_GAP: f64 = 22.0;

impl Legend {
    fn new(graph: &FleetGraph<'_>, live: bool, max_width: f64) -> Self {
        let mut items: Vec<(Sample, String)> = vec![
            (
                Sample::None,
                "arrows: from a link's source to its target, whose services the source mirrors".to_string(),
            ),
            (Sample::Line { dashed: false }, "gateway link".to_string()),
            (Sample::Line { dashed: true }, "remote-discovery link".to_string()),
            (Sample::GatewayBox, "cluster with a gateway".to_string()),
        ];
        if graph.hub.is_some() {
            items.push((Sample::HubBox, "hub (thick border)".to_string()));
        }
        if live {
            items.extend([
                (
                    Sample::Status(Some(Status::Ok)),
                    "✓ every check passes".to_string(),
                ),
                (Sample::Status(Some(Status::Warning)), "‼ a warning".to_string()),
                (
                    Sample::Status(Some(Status::Error)),
                    "× a check failed (thick line: failing link; hover for the check ids)".to_string(),
                ),
                (Sample::Status(None), "? not checked".to_string()),
            ]);
        }
        let font = Font::LEGEND;
        let row_h = line_height(font) + 6.0;
        let mut entries = Vec::new();
        let (mut x, mut y, mut widest) = (0.0_f64, 0.0_f64, 0.0_f64);
        for (sample, text) in items {
            let text = font.fit(&text, max_width - SAMPLE_W - 6.0).into_owned();
            let w = match sample {
                Sample::None => 0.0,
                _ => SAMPLE_W + 6.0,
            } + font.width(&text);
            if x > 0.0 && x + w > max_width {
                x = 0.0;
                y += row_h;
            }
            entries.push((sample, text, Point::new(x, y)));
            widest = widest.max(x + w);
            x += w + ENTRY_GAP;
        }
        Self {
            entries,
            width: widest.ceil(),
            height: y + row_h,
        }
    }

    fn draw(&self, out: &mut String, origin: Point) {
        let font = Font::LEGEND;
        let lh = line_height(font);
        out.push_str("<g id=\"legend\">\n");
        for (k, (sample, text, p)) in self.entries.iter().enumerate() {
            let (x, y) = (origin.x + p.x, origin.y + p.y);
            let mid = y + lh / 2.0;
            let sample_box = |fill: &str, stroke: &str, width: f64| {
                format!(
                    "<rect id=\"legend-{k}-sample\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"/>",
                    x + 2.0,
                    mid - 7.0,
                    SAMPLE_W - 4.0,
                    14.0
                )
            };
            let shape = match sample {
                Sample::None => String::new(),
                Sample::Line { dashed } => format!(
                    "<path id=\"legend-{k}-sample\" d=\"M{:.1} {mid:.1} L{:.1} {mid:.1}\" stroke=\"{INK}\" stroke-width=\"1.6\"{} marker-end=\"url(#arrow-plain)\"/>",
                    x,
                    x + SAMPLE_W - 2.0,
                    if *dashed { " stroke-dasharray=\"7 4\"" } else { "" }
                ),
                Sample::GatewayBox => format!(
                    "{}<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"4\" fill=\"none\" stroke=\"#0369a1\" stroke-width=\"1\"/>",
                    sample_box("#e0f2fe", "#0369a1", 1.2),
                    x,
                    mid - 9.0,
                    SAMPLE_W,
                    18.0
                ),
                Sample::HubBox => sample_box("#fde68a", "#b45309", 3.0),
                Sample::Status(status) => {
                    let (fill, stroke) = health_colours(&Health {
                        status: *status,
                        ..Health::default()
                    });
                    sample_box(fill, stroke, 1.2)
                }
            };
            out.push_str(&shape);
            let tx = match sample {
                Sample::None => x,
                _ => x + SAMPLE_W + 6.0,
            };
            let _ = writeln!(
                out,
                "<text id=\"legend-{k}\" x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"{}\" fill=\"{MUTED}\">{}</text>",
                y + (lh - font.ascent() - font.descent()) / 2.0 + font.ascent(),
                font.size,
                xml(text)
            );
        }
        out.push_str("</g>\n");
    }
}
