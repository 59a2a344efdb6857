//! Where every box, line and label of the picture goes.
//!
//! Fleets come in two shapes, and each gets the layout that reads best for it:
//!
//! - [`star`]: hub and spoke (every link exports from the hub). The hub on top, the
//!   spokes in a grid below it, and the links as a tree: one trunk from the hub, one
//!   channel above each row, one short arrow down into each spoke. Rows wrap, so a
//!   thousand spokes make a grid of about 27 × 37 boxes with every name readable, instead
//!   of one row or one circle tens of thousands of pixels long.
//! - [`ring`]: everything else (two clusters linked both ways, full meshes, mixed
//!   fleets). Clusters around a circle, every box just outside it, links as chords inside
//!   it, so no link crosses a box it does not belong to. Each end of a link has its own
//!   port on its box's side facing the centre, ordered so that links between the same
//!   two clusters run side by side without crossing.
//!
//! General layered-layout crates were tried first (layout-rs, a Graphviz `dot`-style
//! Sugiyama layout): a 50-spoke star became one column 5,630 px tall, a 10-cluster full
//! mesh took 1.1 s and routed its 90 links as long detours, and a 1,000-spoke star had
//! not finished after more than a minute. Both shapes here are laid out in time linear in
//! the links (plus a sort per cluster), and their geometry is checked by the picture
//! test (boxes apart, labels inside their boxes, no link through a foreign box).
//!
//! Coordinates are pixels, y pointing down; a [`Layout`] is shifted so that its drawing
//! starts at (0, 0).

pub mod ring;
pub mod star;

/// A point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Right.
    pub x: f64,
    /// Down.
    pub y: f64,
}

impl Point {
    /// A point.
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }
}

/// An axis-aligned rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl Rect {
    /// The rectangle of size `w` × `h` centred on `c`.
    pub fn centred(c: Point, w: f64, h: f64) -> Self {
        Self {
            x: c.x - w / 2.0,
            y: c.y - h / 2.0,
            w,
            h,
        }
    }

    /// Right edge.
    pub fn right(&self) -> f64 {
        self.x + self.w
    }

    /// Bottom edge.
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }

    /// Centre.
    pub fn centre(&self) -> Point {
        Point::new(self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Grown by `d` on every side (shrunk when negative).
    #[must_use]
    pub fn inflate(&self, d: f64) -> Self {
        Self {
            x: self.x - d,
            y: self.y - d,
            w: self.w + 2.0 * d,
            h: self.h + 2.0 * d,
        }
    }

    /// Whether the two share any area.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }

    /// The smallest rectangle holding both.
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        Self {
            x,
            y,
            w: self.right().max(other.right()) - x,
            h: self.bottom().max(other.bottom()) - y,
        }
    }

    /// Whether the segment from `a` to `b` passes through the inside (Liang–Barsky).
    pub fn hit_by(&self, a: Point, b: Point) -> bool {
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let mut t0: f64 = 0.0;
        let mut t1: f64 = 1.0;
        for (p, q) in [
            (-dx, a.x - self.x),
            (dx, self.right() - a.x),
            (-dy, a.y - self.y),
            (dy, self.bottom() - a.y),
        ] {
            if p.abs() < f64::EPSILON {
                if q <= 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        t1 - t0 > 1e-9
    }
}

/// What to lay out: the size of every box, the links, the hub, and the size of each
/// link's label (when the link should get one).
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Outer size (width, height) of each cluster's box.
    pub boxes: Vec<(f64, f64)>,
    /// Links as (exporting cluster, mirroring cluster) indices into `boxes`.
    pub links: Vec<(usize, usize)>,
    /// The hub, if the fleet has one.
    pub hub: Option<usize>,
    /// Size of each link's label, or `None` for no label.
    pub labels: Vec<Option<(f64, f64)>>,
}

/// Which layout was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Hub on top, spokes in a grid, links as a tree.
    Star,
    /// Clusters on a circle, links as chords.
    Ring,
}

/// The result: every box, every link's polyline, shared wiring, label boxes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The layout used.
    pub shape: Shape,
    /// Outer box of each cluster, in [`Spec::boxes`] order.
    pub boxes: Vec<Rect>,
    /// Each link's polyline, from the exporting cluster's box to the mirroring one's
    /// (the arrowhead goes at the end). In the star layout it is the arrow into the
    /// spoke; the way back to the hub is [`Layout::bus`].
    pub routes: Vec<Vec<Point>>,
    /// Wiring shared by many links (the star's trunk and channels).
    pub bus: Vec<Vec<Point>>,
    /// Where each link's label goes, if it has one and there was room.
    pub labels: Vec<Option<Rect>>,
    /// Width and height of the drawing.
    pub width: f64,
    /// See `width`.
    pub height: f64,
}

/// Lay out a fleet.
pub fn layout(spec: &Spec) -> Layout {
    let star = spec
        .hub
        .is_some_and(|hub| !spec.links.is_empty() && spec.links.iter().all(|&(from, _)| from == hub));
    let mut layout = if star {
        star::place(spec)
    } else {
        ring::place(spec)
    };
    place_labels(&mut layout, &spec.labels);
    fit(&mut layout);
    layout
}

/// Every segment of a polyline.
pub fn segments(points: &[Point]) -> impl Iterator<Item = (Point, Point)> + '_ {
    points.windows(2).map(|w| (w[0], w[1]))
}

/// Put each label beside its link, near the middle of the link's longest segment, on
/// the first spot that touches no box, no other label and no line; links with no free
/// spot get no label (their tooltip still says everything).
fn place_labels(layout: &mut Layout, sizes: &[Option<(f64, f64)>]) {
    layout.labels = vec![None; layout.routes.len()];
    for (edge, size) in sizes.iter().enumerate() {
        let (Some((width, height)), Some(route)) = (size, layout.routes.get(edge)) else {
            continue;
        };
        let Some((a, b)) = segments(route).max_by(|(a1, b1), (a2, b2)| {
            let l1 = (b1.x - a1.x).hypot(b1.y - a1.y);
            let l2 = (b2.x - a2.x).hypot(b2.y - a2.y);
            l1.total_cmp(&l2)
        }) else {
            continue;
        };
        let len = (b.x - a.x).hypot(b.y - a.y).max(1e-9);
        let (nx, ny) = (-(b.y - a.y) / len, (b.x - a.x) / len);
        let offset = f64::midpoint(nx.abs() * width, ny.abs() * height) + 3.0;
        'spots: for t in [0.5, 0.4, 0.6, 0.3, 0.7] {
            for side in [1.0, -1.0] {
                let centre = Point::new(
                    a.x + (b.x - a.x) * t + nx * side * offset,
                    a.y + (b.y - a.y) * t + ny * side * offset,
                );
                let rect = Rect::centred(centre, *width, *height);
                if is_free(layout, &rect) {
                    layout.labels[edge] = Some(rect);
                    break 'spots;
                }
            }
        }
    }
}

fn is_free(layout: &Layout, rect: &Rect) -> bool {
    let room = rect.inflate(2.0);
    !layout.boxes.iter().any(|b| b.overlaps(&room))
        && !layout.labels.iter().flatten().any(|l| l.overlaps(&room))
        && !layout
            .routes
            .iter()
            .chain(&layout.bus)
            .flat_map(|r| segments(r))
            .any(|(a, b)| room.hit_by(a, b))
}

/// Shift everything so that the drawing starts at (0, 0), and record its size.
fn fit(layout: &mut Layout) {
    let mut bounds: Option<Rect> = None;
    let mut grow = |r: Rect| bounds = Some(bounds.map_or(r, |b| b.union(&r)));
    for b in &layout.boxes {
        grow(*b);
    }
    for l in layout.labels.iter().flatten() {
        grow(*l);
    }
    for p in layout.routes.iter().chain(&layout.bus).flatten() {
        grow(Rect {
            x: p.x,
            y: p.y,
            w: 0.0,
            h: 0.0,
        });
    }
    let Some(bounds) = bounds else {
        layout.width = 0.0;
        layout.height = 0.0;
        return;
    };
    let (dx, dy) = (-bounds.x, -bounds.y);
    for b in layout.boxes.iter_mut().chain(layout.labels.iter_mut().flatten()) {
        b.x += dx;
        b.y += dy;
    }
    for p in layout.routes.iter_mut().chain(layout.bus.iter_mut()).flatten() {
        p.x += dx;
        p.y += dy;
    }
    layout.width = bounds.w;
    layout.height = bounds.h;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_hit_rectangles_only_through_their_inside() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert!(r.hit_by(Point::new(-5.0, 5.0), Point::new(15.0, 5.0)));
        assert!(r.hit_by(Point::new(5.0, 5.0), Point::new(5.0, 6.0)));
        assert!(!r.hit_by(Point::new(-5.0, 12.0), Point::new(15.0, 12.0)));
        assert!(!r.hit_by(Point::new(-5.0, -1.0), Point::new(-1.0, 20.0)));
        // Along an edge is not through the inside.
        assert!(!r.hit_by(Point::new(-5.0, 0.0), Point::new(15.0, 0.0)));
    }

    fn spec(n: usize, links: Vec<(usize, usize)>, hub: Option<usize>) -> Spec {
        Spec {
            boxes: vec![(150.0, 50.0); n],
            labels: vec![None; links.len()],
            links,
            hub,
        }
    }

    /// No two boxes overlap, and no link passes through a box other than its ends'.
    fn assert_clean(layout: &Layout, spec: &Spec) {
        for (i, a) in layout.boxes.iter().enumerate() {
            for b in &layout.boxes[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
        for (e, route) in layout.routes.iter().enumerate() {
            let (from, to) = spec.links[e];
            for (k, b) in layout.boxes.iter().enumerate() {
                if k == from || k == to {
                    continue;
                }
                assert!(
                    !segments(route).any(|(p, q)| b.inflate(-0.5).hit_by(p, q)),
                    "link {e} crosses box {k}"
                );
            }
        }
        for (k, b) in layout.boxes.iter().enumerate() {
            if Some(k) != spec.hub {
                assert!(
                    !layout
                        .bus
                        .iter()
                        .flat_map(|r| segments(r))
                        .any(|(p, q)| b.inflate(-0.5).hit_by(p, q))
                );
            }
        }
    }

    #[test]
    fn stars_and_rings_keep_boxes_and_links_apart() {
        for n in [2, 3, 10, 50] {
            let mesh: Vec<(usize, usize)> = (0..n)
                .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
                .collect();
            let s = spec(n, mesh, None);
            let l = layout(&s);
            assert_eq!(l.shape, Shape::Ring);
            assert_clean(&l, &s);
            let s = spec(n, (1..n).map(|i| (0, i)).collect(), Some(0));
            let l = layout(&s);
            assert_eq!(l.shape, Shape::Star);
            assert_clean(&l, &s);
        }
    }

    #[test]
    fn a_thousand_spokes_make_a_grid_not_a_line() {
        let s = spec(1000, (1..1000).map(|i| (0, i)).collect(), Some(0));
        let l = layout(&s);
        assert!(
            l.width < 3.0 * l.height && l.height < 3.0 * l.width,
            "{} x {}",
            l.width,
            l.height
        );
        assert!(l.width < 10_000.0, "{}", l.width);
    }
}
