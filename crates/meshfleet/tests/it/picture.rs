//! `graph` pictures, looked at the way a person sees them: each SVG is rendered by
//! resvg with the real DejaVu Sans font, and the rendered geometry is checked, not the
//! numbers meshfleet wrote: the bounding box of every shaped line of text against its
//! box and the canvas, boxes against boxes, links against the boxes they pass, labels
//! against lines, and the rendered pixels against the canvas edges.
//!
//! The examples' pictures are kept as PNGs beside them (`examples/*/graph.png`, shown in
//! the README); `MESHFLEET_UPDATE_PICTURES=1 cargo test -p meshfleet --test integration
//! picture` rewrites them after a deliberate change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use resvg::tiny_skia::{self, PathSegment};
use resvg::usvg;

use crate::support::{TempFleet, meshfleet, repo_root, texts};

/// Where Debian's `fonts-dejavu-core` puts the font the pictures name first.
const FONT_DIR: &str = "/usr/share/fonts/truetype/dejavu";

/// A rectangle in canvas pixels.
#[derive(Debug, Clone, Copy)]
struct Area {
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
}

impl Area {
    fn of(r: tiny_skia::Rect) -> Self {
        Self {
            left: r.left(),
            top: r.top(),
            right: r.right(),
            bottom: r.bottom(),
        }
    }

    fn inside(&self, outer: &Self, slack: f32) -> bool {
        self.left >= outer.left - slack
            && self.top >= outer.top - slack
            && self.right <= outer.right + slack
            && self.bottom <= outer.bottom + slack
    }

    fn overlaps(&self, other: &Self) -> bool {
        const SLACK: f32 = 0.5;
        self.left + SLACK < other.right
            && other.left + SLACK < self.right
            && self.top + SLACK < other.bottom
            && other.top + SLACK < self.bottom
    }

    fn shrink(&self, d: f32) -> Self {
        Self {
            left: self.left + d,
            top: self.top + d,
            right: self.right - d,
            bottom: self.bottom - d,
        }
    }

    /// Whether the segment a–b passes through the inside (Liang–Barsky clipping).
    fn hit_by(&self, a: (f32, f32), b: (f32, f32)) -> bool {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0_f32, 1.0_f32);
        for (p, q) in [
            (-dx, a.0 - self.left),
            (dx, self.right - a.0),
            (-dy, a.1 - self.top),
            (dy, self.bottom - a.1),
        ] {
            if p.abs() < f32::EPSILON {
                if q <= 0.0 {
                    return false;
                }
            } else if p < 0.0 {
                t0 = t0.max(q / p);
            } else {
                t1 = t1.min(q / p);
            }
        }
        t1 - t0 > 1e-6
    }
}

type Segment = ((f32, f32), (f32, f32));

/// What the renderer made of an SVG: the canvas, every text's shaped bounding box, every
/// box, every link's segments.
struct Rendered {
    width: f32,
    height: f32,
    texts: Vec<(String, Area, bool)>,
    boxes: BTreeMap<usize, Area>,
    rings: BTreeMap<usize, Area>,
    label_backgrounds: BTreeMap<usize, Area>,
    links: Vec<(usize, usize, usize, Vec<Segment>)>,
    bus: Vec<Segment>,
    pixmap: tiny_skia::Pixmap,
}

fn options() -> usvg::Options<'static> {
    let mut options = usvg::Options::default();
    let db = options.fontdb_mut();
    for file in ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"] {
        let path = Path::new(FONT_DIR).join(file);
        let data = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read `{}` ({e}); the picture tests render with DejaVu Sans: install \
                 Debian's `fonts-dejavu-core` (scripts/test does)",
                path.display()
            )
        });
        db.load_font_data(data);
    }
    db.set_sans_serif_family("DejaVu Sans");
    options
}

fn render(svg: &str, scale: f32) -> Rendered {
    let tree = usvg::Tree::from_str(svg, &options()).expect("the SVG parses");
    let size = tree.size();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mut pixmap = tiny_skia::Pixmap::new(
        (size.width() * scale).ceil() as u32,
        (size.height() * scale).ceil() as u32,
    )
    .expect("a canvas");
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    let mut rendered = Rendered {
        width: size.width(),
        height: size.height(),
        texts: Vec::new(),
        boxes: BTreeMap::new(),
        rings: BTreeMap::new(),
        label_backgrounds: BTreeMap::new(),
        links: Vec::new(),
        bus: Vec::new(),
        pixmap,
    };
    collect(tree.root(), &mut rendered);
    rendered
}

fn numbers(id: &str, prefix: &str) -> Option<Vec<usize>> {
    id.strip_prefix(prefix)?
        .split('-')
        .map(|n| n.parse().ok())
        .collect()
}

fn collect(group: &usvg::Group, out: &mut Rendered) {
    for node in group.children() {
        match node {
            usvg::Node::Group(g) => collect(g, out),
            usvg::Node::Text(t) => {
                let drawn = t.flattened().has_children();
                out.texts
                    .push((t.id().to_string(), Area::of(t.abs_bounding_box()), drawn));
            }
            usvg::Node::Path(p) => {
                let id = p.id();
                let area = Area::of(p.abs_bounding_box());
                if let Some(n) = id.strip_suffix("-ring").and_then(|i| numbers(i, "box-")) {
                    out.rings.insert(n[0], area);
                } else if let Some(n) = numbers(id, "box-") {
                    out.boxes.insert(n[0], area);
                } else if let Some(n) = id.strip_suffix("-bg").and_then(|i| numbers(i, "edgelabel-")) {
                    out.label_backgrounds.insert(n[0], area);
                } else if let Some(n) = numbers(id, "edge-") {
                    out.links.push((n[0], n[1], n[2], segments(p)));
                } else if id == "bus" {
                    out.bus = segments(p);
                }
            }
            usvg::Node::Image(_) => {}
        }
    }
}

/// The path's segments in canvas coordinates (curves by their end points: the pictures
/// draw straight lines only).
fn segments(path: &usvg::Path) -> Vec<Segment> {
    let ts = path.abs_transform();
    let map = |p: tiny_skia::Point| {
        let mut q = [p];
        ts.map_points(&mut q);
        (q[0].x, q[0].y)
    };
    let mut out = Vec::new();
    let mut at = None;
    for segment in path.data().segments() {
        match segment {
            PathSegment::MoveTo(p) => at = Some(map(p)),
            PathSegment::LineTo(p) | PathSegment::QuadTo(_, p) | PathSegment::CubicTo(_, _, p) => {
                let p = map(p);
                if let Some(a) = at {
                    out.push((a, p));
                }
                at = Some(p);
            }
            PathSegment::Close => {}
        }
    }
    out
}

/// The outer extent of cluster `n`: its second border when it has one.
fn extent(r: &Rendered, n: usize) -> Area {
    r.rings.get(&n).or_else(|| r.boxes.get(&n)).copied().expect("box")
}

/// Everything wrong with a picture, in words; empty when it reads well.
pub fn problems(svg: &str) -> Vec<String> {
    let r = render(svg, 1.0);
    let mut found = Vec::new();
    let canvas = Area {
        left: 0.0,
        top: 0.0,
        right: r.width,
        bottom: r.height,
    };
    if r.texts.is_empty() || r.boxes.is_empty() {
        found.push("no text or no cluster box was drawn".to_string());
    }
    for (id, area, drawn) in &r.texts {
        if !drawn {
            found.push(format!(
                "text `{id}` was not drawn (no glyphs: is DejaVu Sans installed?)"
            ));
        }
        if !area.inside(&canvas, 0.0) {
            found.push(format!("text `{id}` {area:?} leaves the canvas {canvas:?}"));
        }
        // `box-N-line-K` belongs to box N.
        let owner = id
            .strip_prefix("box-")
            .and_then(|rest| rest.split('-').next()?.parse::<usize>().ok());
        if let Some(n) = owner {
            match r.boxes.get(&n) {
                Some(b) if area.inside(b, 0.5) => {}
                Some(b) => found.push(format!("text `{id}` {area:?} leaves its box {b:?}")),
                None => found.push(format!("text `{id}` has no box")),
            }
        }
        for &k in r.boxes.keys() {
            if Some(k) != owner && area.overlaps(&extent(&r, k)) {
                found.push(format!("text `{id}` overlaps cluster box {k}"));
            }
        }
    }
    for (i, (a, area_a, _)) in r.texts.iter().enumerate() {
        for (b, area_b, _) in &r.texts[i + 1..] {
            if area_a.overlaps(area_b) {
                found.push(format!("texts `{a}` and `{b}` overlap"));
            }
        }
    }
    let keys: Vec<usize> = r.boxes.keys().copied().collect();
    for (i, &a) in keys.iter().enumerate() {
        for &b in &keys[i + 1..] {
            if extent(&r, a).overlaps(&extent(&r, b)) {
                found.push(format!("cluster boxes {a} and {b} overlap"));
            }
        }
    }
    for (edge, from, to, segs) in &r.links {
        for &k in &keys {
            if k != *from && k != *to && segs.iter().any(|(p, q)| extent(&r, k).shrink(1.0).hit_by(*p, *q)) {
                found.push(format!(
                    "link {edge} ({from} → {to}) runs through cluster box {k}"
                ));
            }
        }
    }
    // The wiring starts at the hub's bottom edge, so it never enters a box, not even the hub's.
    for &k in &keys {
        if r.bus
            .iter()
            .any(|(p, q)| extent(&r, k).shrink(1.0).hit_by(*p, *q))
        {
            found.push(format!("the shared wiring runs through cluster box {k}"));
        }
    }
    for (&label, bg) in &r.label_backgrounds {
        let lines = r.links.iter().flat_map(|(_, _, _, s)| s).chain(&r.bus);
        if lines.clone().any(|(p, q)| bg.shrink(0.5).hit_by(*p, *q)) {
            found.push(format!("the label of link {label} lies on a line"));
        }
    }
    // Pixels: nothing drawn touches the canvas edge (nothing cut off), and no edge of
    // the canvas is far from the drawing (the canvas fits it).
    let margins = ink_margins(&r.pixmap);
    if margins.iter().any(|&m| m < 2) {
        found.push(format!(
            "the drawing touches the canvas edge (margins {margins:?}: left, top, right, bottom)"
        ));
    }
    if margins.iter().any(|&m| m > 28) {
        found.push(format!(
            "the canvas does not fit the drawing (margins {margins:?}: left, top, right, bottom)"
        ));
    }
    found
}

/// How far the drawn pixels (anything darker than near-white) stay from each edge of
/// the canvas: left, top, right, bottom.
fn ink_margins(pixmap: &tiny_skia::Pixmap) -> [u32; 4] {
    let (width, height) = (pixmap.width(), pixmap.height());
    let (mut left, mut top, mut right, mut bottom) = (width, height, 0, 0);
    for (index, pixel) in pixmap.pixels().iter().enumerate() {
        let colour = pixel.demultiply();
        let ink = colour.alpha() > 0 && (colour.red() < 235 || colour.green() < 235 || colour.blue() < 235);
        if ink {
            let index = u32::try_from(index).expect("pixel index");
            let (x, y) = (index % width, index / width);
            left = left.min(x);
            right = right.max(x);
            top = top.min(y);
            bottom = bottom.max(y);
        }
    }
    [
        left,
        top,
        width.saturating_sub(right + 1),
        height.saturating_sub(bottom + 1),
    ]
}

/// The picture as a PNG at twice its size.
pub fn png(svg: &str) -> Vec<u8> {
    render(svg, 2.0).pixmap.encode_png().expect("png")
}

fn graph_svg(dir: &Path, path: &str) -> String {
    let out = meshfleet(dir)
        .args(["graph", path, "--format", "svg"])
        .output()
        .expect("graph");
    let (svg, stderr) = texts(&out);
    assert!(out.status.success(), "graph {path}: {stderr}");
    svg
}

fn assert_reads_well(name: &str, svg: &str) {
    let found = problems(svg);
    assert!(
        found.is_empty(),
        "{name}: {} problem(s):\n{}",
        found.len(),
        found.join("\n")
    );
}

/// A generated fleet: `star` (hub and spoke) or `mesh` (every pair both ways) of `n`
/// clusters, or `mixed`: long names and addresses, gateway and remote-discovery links,
/// some pairs linked both ways.
pub fn generated(kind: &str, n: usize) -> TempFleet {
    let mut text = format!(
        "apiVersion: meshfleet.io/v1alpha1\nkind: Fleet\nmetadata: {{name: {kind}-{n}}}\nspec:\n  linkerd: {{version: 2025.10.7}}\n  gitops: {{engine: flux, repository: {{url: https://git.example/fleet.git}}}}\n  identity: {{trustAnchor: anchor.crt}}\n  secrets: {{vault: {{server: https://vault.example:8200, mount: secret, path: mesh}}}}\n  clusters:\n"
    );
    let name = |i: usize| {
        if kind == "mixed" {
            format!("eu-west-{i}-production-payments-cluster")
        } else {
            format!("c{i}")
        }
    };
    for i in 0..n {
        let _ = write!(
            text,
            "    - name: {}\n      vaultAuthMountPath: kubernetes-c{i}\n      apiServer: https://c{i}.example:6443\n      network: {{pods: [10.{}.{}.0/24], services: [172.{}.{}.0/24]}}\n",
            name(i),
            i / 256,
            i % 256,
            16 + i / 256,
            i % 256
        );
        let address = if kind == "mixed" {
            format!("gateway-{i}.payments.eu-west.internal.corp.example.com")
        } else {
            format!("c{i}.example")
        };
        if kind != "star" || i == 0 {
            let _ = writeln!(
                text,
                "      gateway: {{serviceType: NodePort, addresses: [{address}], nodePort: 30143, probe: {{nodePort: 30191}}}}"
            );
        }
    }
    match kind {
        "star" => text.push_str("  topology: {hubAndSpoke: {hub: c0}}\n"),
        "mesh" => text.push_str("  topology: {fullMesh: true}\n"),
        _ => {
            text.push_str("  links:\n");
            for i in 0..n {
                let next = (i + 1) % n;
                let _ = writeln!(text, "    - {{source: {}, target: {}}}", name(i), name(next));
                if i % 2 == 0 {
                    let _ = writeln!(text, "    - {{source: {}, target: {}}}", name(next), name(i));
                }
                if i % 3 == 0 {
                    let _ = writeln!(
                        text,
                        "    - {{source: {}, target: {}, mode: remote-discovery}}",
                        name(i),
                        name((i + n / 2) % n)
                    );
                }
            }
        }
    }
    TempFleet::new(&text)
}

#[test]
fn example_pictures_keep_every_label_in_its_box_and_match_their_pngs() {
    let root = repo_root();
    for example in ["homelab", "hub-spoke"] {
        let svg = graph_svg(&root, &format!("examples/{example}"));
        assert_reads_well(example, &svg);
        let png = png(&svg);
        let path = root.join("examples").join(example).join("graph.png");
        if std::env::var_os("MESHFLEET_UPDATE_PICTURES").is_some() {
            std::fs::write(&path, &png).expect("write png");
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "`{}`: {e}; rerun with MESHFLEET_UPDATE_PICTURES=1 to write it",
                path.display()
            )
        });
        let (now, then) = (
            tiny_skia::Pixmap::decode_png(&png).expect("decode"),
            tiny_skia::Pixmap::decode_png(&committed).expect("decode committed"),
        );
        assert_eq!(
            (now.width(), now.height()),
            (then.width(), then.height()),
            "{example}: the picture changed size; rerun with MESHFLEET_UPDATE_PICTURES=1 and look at it"
        );
        let differing = now
            .pixels()
            .iter()
            .zip(then.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            differing * 100 < now.pixels().len(),
            "{example}: {differing} pixels differ from `{}`; rerun with MESHFLEET_UPDATE_PICTURES=1 and look at it",
            path.display()
        );
    }
}

#[test]
fn pictures_of_10_and_50_clusters_have_no_overlaps() {
    for (kind, n) in [
        ("star", 10),
        ("mesh", 10),
        ("mixed", 10),
        ("star", 50),
        ("mesh", 50),
    ] {
        let fleet = generated(kind, n);
        let svg = graph_svg(fleet.path(), ".");
        assert_reads_well(&format!("{kind} of {n}"), &svg);
        // The pairs linked both ways are two separate lines.
        let links = svg.matches("<path id=\"edge-").count();
        let expected = match kind {
            "star" => n - 1,
            "mesh" => n * (n - 1),
            _ => n + n / 2 + n.div_ceil(3),
        };
        assert_eq!(links, expected, "{kind} of {n}");
    }
}

#[test]
fn long_names_are_shortened_with_the_full_value_in_the_tooltip() {
    let fleet = generated("mixed", 10);
    let svg = graph_svg(fleet.path(), ".");
    let address = "gateway-3.payments.eu-west.internal.corp.example.com";
    assert!(
        svg.contains(&format!("gateway {address} (NodePort), port 30143")),
        "tooltip"
    );
    assert!(
        !svg.contains(&format!(">gateway {address}:30143<")),
        "shortened in the box"
    );
    assert!(svg.contains("…"), "{svg}");
    assert!(
        svg.contains("stroke-dasharray"),
        "remote-discovery links are dashed"
    );
}

#[test]
fn a_thousand_spoke_fleet_is_a_readable_grid() {
    let fleet = generated("star", 1000);
    let started = Instant::now();
    let svg = graph_svg(fleet.path(), ".");
    let elapsed = started.elapsed();
    let r = render(&svg, 0.25);
    eprintln!(
        "graph of 1,000 clusters: {:.2} s (debug build, including validation), {} x {} px, {} bytes",
        elapsed.as_secs_f64(),
        r.width,
        r.height,
        svg.len()
    );
    assert!(
        r.width < 2.0 * r.height && r.height < r.width,
        "{} x {}",
        r.width,
        r.height
    );
    assert_reads_well("star of 1000", &svg);
}

#[test]
fn the_checker_sees_what_the_old_pictures_got_wrong() {
    // The hub of the old hub-spoke picture: a 150 px box with a 190 px caption, and a
    // legend running past the right edge.
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200" viewBox="0 0 400 200" font-family="DejaVu Sans">
<rect width="100%" height="100%" fill="#ffffff"/>
<rect id="box-0" x="100" y="60" width="150" height="46" fill="#fde68a"/>
<text id="box-0-line-0" x="175" y="80" text-anchor="middle" font-size="14">in-cluster-local</text>
<text id="box-0-line-1" x="175" y="96" text-anchor="middle" font-size="10">gateway tfx-internal.gerega.net:30143</text>
<text id="legend-0" x="10" y="190" font-size="11">arrows: services flow from the exporting cluster to the mirroring one; solid = gateway, dashed = remote-discovery</text>
</svg>"##;
    let found = problems(svg);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("text `box-0-line-1`") && p.contains("leaves its box")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("text `legend-0`") && p.contains("leaves the canvas")),
        "{found:#?}"
    );
    assert!(found.iter().any(|p| p.contains("does not fit")), "{found:#?}");
}
