//! Clusters around a circle, links as chords inside it.
//!
//! Every box lies wholly outside the circle, and a chord between two points of a circle
//! stays inside it, so a link can only meet its own two boxes. The radius grows until
//! neighbouring boxes, seen from the centre, leave a gap between them. A link is drawn
//! straight from box to box when that line meets no other box; otherwise it leaves its
//! box through a radial lead that stays inside its box's angle, crosses the circle as a
//! chord, and enters the other box the same way.
//!
//! The ends of a cluster's links get separate ports across its side that faces the
//! centre, sorted by where the other end lies, so that chords leaving one box do not
//! cross each other there; the two links between the same pair of clusters get ports in
//! opposite orders at the two ends, so they run side by side and never cross.

use std::f64::consts::{FRAC_PI_2, PI, TAU};

use super::{Layout, Point, Rect, Shape, Spec};

/// Gap between the circle and the nearest point of any box: room for the arrowhead.
const LEAD: f64 = 14.0;
/// Smallest gap between neighbouring boxes, measured along the circle: room for the two
/// arrows of a pair linked both ways.
const GAP: f64 = 50.0;
/// Fraction of a box's angle left free at each side when spreading its ports.
const PORT_MARGIN: f64 = 0.15;

/// Lay out the clusters of `spec` on a circle.
pub fn place(spec: &Spec) -> Layout {
    let n = spec.boxes.len();
    let mut layout = Layout {
        shape: Shape::Ring,
        boxes: Vec::new(),
        routes: vec![Vec::new(); spec.links.len()],
        bus: Vec::new(),
        labels: Vec::new(),
        width: 0.0,
        height: 0.0,
    };
    if n == 0 {
        return layout;
    }
    if n == 1 {
        let (w, h) = spec.boxes[0];
        layout.boxes.push(Rect { x: 0.0, y: 0.0, w, h });
        return layout;
    }
    // Two clusters side by side read better than one above the other.
    let start = if n == 2 { PI } else { -FRAC_PI_2 };
    #[allow(clippy::cast_precision_loss)]
    let angles: Vec<f64> = (0..n).map(|i| start + TAU * i as f64 / n as f64).collect();
    let widest_label = spec.labels.iter().flatten().map(|(w, _)| *w).fold(0.0, f64::max);
    // A first guess from the boxes' sizes, then grow until neighbours are apart.
    let perimeter: f64 = spec.boxes.iter().map(|(w, h)| (w + h) / 2.0 + GAP).sum();
    let mut radius = (perimeter / TAU).max(60.0).max(widest_label / 2.0 + 24.0);
    let mut placed = place_all(spec, &angles, radius);
    for _ in 0..400 {
        if apart(&placed, &angles, radius) {
            break;
        }
        radius *= 1.05;
        placed = place_all(spec, &angles, radius);
    }
    layout.boxes = placed.iter().map(|p| p.rect).collect();
    let ports = ports(spec, &angles, &placed);
    for (edge, &(from, to)) in spec.links.iter().enumerate() {
        let (Some(&a), Some(&b)) = (ports.get(&(edge, from)), ports.get(&(edge, to))) else {
            continue;
        };
        let on_circle = |phi: f64| Point::new(radius * phi.cos(), radius * phi.sin());
        let (start, end) = (entry(&placed[from].rect, a), entry(&placed[to].rect, b));
        // Straight from port to port, or else straight between the two boxes' centres
        // (the two directions of a pair shifted apart), when that crosses no box, its own
        // two included; else through the ports on the circle, which never crosses one.
        let clear = |p: Point, q: Point| {
            !layout.boxes.iter().enumerate().any(|(k, r)| {
                let room = if k == from || k == to {
                    r.inflate(-0.5)
                } else {
                    r.inflate(3.0)
                };
                room.hit_by(p, q)
            })
        };
        layout.routes[edge] = if clear(start, end) {
            vec![start, end]
        } else if let Some((p, q)) =
            between_centres(&placed[from].rect, &placed[to].rect, from < to).filter(|&(p, q)| clear(p, q))
        {
            vec![p, q]
        } else {
            vec![start, on_circle(a), on_circle(b), end]
        };
    }
    layout
}

/// A box placed for a radius, with the angles it covers relative to its own direction.
#[derive(Debug, Clone, Copy)]
struct Placed {
    rect: Rect,
    low: f64,
    high: f64,
}

fn place_all(spec: &Spec, angles: &[f64], radius: f64) -> Vec<Placed> {
    spec.boxes
        .iter()
        .zip(angles)
        .map(|(&(w, h), &theta)| place_one(w, h, theta, radius))
        .collect()
}

/// Push a box out along its direction until its nearest point is `LEAD` beyond the
/// circle.
fn place_one(width: f64, height: f64, theta: f64, radius: f64) -> Placed {
    let (ux, uy) = (theta.cos(), theta.sin());
    let (half_w, half_h) = (width / 2.0, height / 2.0);
    let nearest = |distance: f64| {
        let dx = ((distance * ux).abs() - half_w).max(0.0);
        let dy = ((distance * uy).abs() - half_h).max(0.0);
        dx.hypot(dy)
    };
    let want = radius + LEAD;
    // `nearest` grows with the distance, and reaches `want` by `want + half_w + half_h`.
    let (mut lo, mut hi) = (0.0, want + half_w + half_h);
    for _ in 0..60 {
        let mid = f64::midpoint(lo, hi);
        if nearest(mid) >= want {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let rect = Rect::centred(Point::new(hi * ux, hi * uy), width, height);
    let relative = |x: f64, y: f64| {
        let mut angle = y.atan2(x) - theta;
        while angle > PI {
            angle -= TAU;
        }
        while angle <= -PI {
            angle += TAU;
        }
        angle
    };
    let corners = [
        relative(rect.x, rect.y),
        relative(rect.right(), rect.y),
        relative(rect.x, rect.bottom()),
        relative(rect.right(), rect.bottom()),
    ];
    Placed {
        rect,
        low: corners.iter().copied().fold(f64::INFINITY, f64::min),
        high: corners.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Whether every box's angle ends `GAP` (along the circle) before the next one's starts.
fn apart(placed: &[Placed], angles: &[f64], radius: f64) -> bool {
    let n = placed.len();
    (0..n).all(|i| {
        let j = (i + 1) % n;
        let next = if j == 0 { angles[0] + TAU } else { angles[j] };
        let gap = (next + placed[j].low) - (angles[i] + placed[i].high);
        gap * radius >= GAP
    })
}

/// The angle of every link end: (link, cluster) → angle of its port on the circle.
fn ports(spec: &Spec, angles: &[f64], placed: &[Placed]) -> std::collections::HashMap<(usize, usize), f64> {
    let n = angles.len();
    let mut ends: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (edge, &(from, to)) in spec.links.iter().enumerate() {
        ends[from].push((edge, to));
        ends[to].push((edge, from));
    }
    let mut ports = std::collections::HashMap::new();
    for (node, list) in ends.iter_mut().enumerate() {
        // How far round (counter-clockwise in angle) the other end lies.
        let round = |other: usize| (other + n - node) % n;
        list.sort_by(|&(e1, o1), &(e2, o2)| {
            round(o2).cmp(&round(o1)).then_with(|| {
                // Same pair of clusters: opposite orders at the two ends.
                if node < o1 { e1.cmp(&e2) } else { e2.cmp(&e1) }
            })
        });
        let p = placed[node];
        let (low, high) = (
            p.low + PORT_MARGIN * (p.high - p.low),
            p.high - PORT_MARGIN * (p.high - p.low),
        );
        #[allow(clippy::cast_precision_loss)]
        let count = list.len() as f64;
        for (k, &(edge, _)) in list.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let at = low + (high - low) * (k as f64 + 0.5) / count;
            ports.insert((edge, node), angles[node] + at);
        }
    }
    ports
}

/// The line between the centres of two boxes, from border to border, shifted 4 px to
/// one side (`left`) or the other so that the two links of a pair run side by side.
fn between_centres(from: &Rect, to: &Rect, left: bool) -> Option<(Point, Point)> {
    let (a, b) = (from.centre(), to.centre());
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len = dx.hypot(dy);
    if len < 1.0 {
        return None;
    }
    let side = if left { 4.0 } else { -4.0 };
    let (ox, oy) = (-dy / len * side, dx / len * side);
    let (a, b) = (Point::new(a.x + ox, a.y + oy), Point::new(b.x + ox, b.y + oy));
    Some((exit(from, a, b)?, exit(to, b, a)?))
}

/// Where the segment from `inside` (a point in `rect`) towards `outside` leaves `rect`.
fn exit(rect: &Rect, inside: Point, outside: Point) -> Option<Point> {
    let (dx, dy) = (outside.x - inside.x, outside.y - inside.y);
    let mut t: f64 = 1.0;
    if dx.abs() > f64::EPSILON {
        let edge = if dx > 0.0 { rect.right() } else { rect.x };
        t = t.min((edge - inside.x) / dx);
    }
    if dy.abs() > f64::EPSILON {
        let edge = if dy > 0.0 { rect.bottom() } else { rect.y };
        t = t.min((edge - inside.y) / dy);
    }
    (t > 0.0 && t < 1.0).then(|| Point::new(inside.x + dx * t, inside.y + dy * t))
}

/// Where the ray from the centre at angle `phi` enters `rect` (the ray is known to meet
/// it: `phi` lies inside the box's angle).
fn entry(rect: &Rect, phi: f64) -> Point {
    let (dx, dy) = (phi.cos(), phi.sin());
    let mut t_enter: f64 = 0.0;
    for (d, lo, hi) in [(dx, rect.x, rect.right()), (dy, rect.y, rect.bottom())] {
        if d.abs() > f64::EPSILON {
            let (t1, t2) = (lo / d, hi / d);
            t_enter = t_enter.max(t1.min(t2));
        }
    }
    Point::new(dx * t_enter, dy * t_enter)
}
