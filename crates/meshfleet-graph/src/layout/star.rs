//! Hub and spoke as a tree: the hub on top, the spokes in a grid of rows below it.
//!
//! One trunk leaves the bottom of the hub and runs down a gutter between two columns;
//! above each row a channel branches off it; from the channel one short arrow goes down
//! into each linked spoke. The trunk and channels are shared wiring ([`Layout::bus`]);
//! each link is its own arrow, styled by its mode and health. The number of columns
//! keeps the grid about 1.6 times as wide as it is tall, so the picture keeps the shape
//! of a screen from a handful of spokes to a thousand.

use super::{Layout, Point, Rect, Shape, Spec};

/// Horizontal gap between columns (the trunk runs in the middle of one).
const COLUMN_GAP: f64 = 44.0;
/// Length of the arrow from a channel into a spoke.
const STUB: f64 = 28.0;
/// Space above each channel (the trunk crosses it; nothing else is there).
const ABOVE_CHANNEL: f64 = 20.0;
/// Aspect ratio the grid aims for (width / height).
const ASPECT: f64 = 1.6;

/// Lay out a hub-and-spoke fleet (`spec.hub` is set and every link leaves it).
pub fn place(spec: &Spec) -> Layout {
    let hub = spec.hub.unwrap_or(0);
    let spokes: Vec<usize> = (0..spec.boxes.len()).filter(|&i| i != hub).collect();
    let widest_label = spec.labels.iter().flatten().map(|(w, _)| *w).fold(0.0, f64::max);
    let cell_w = spokes
        .iter()
        .map(|&i| spec.boxes[i].0)
        .fold(0.0, f64::max)
        // A label sits beside its arrow, which is in the middle of the cell.
        .max(2.0 * (widest_label + 8.0));
    let cell_h = spokes.iter().map(|&i| spec.boxes[i].1).fold(0.0, f64::max);
    let pitch_x = cell_w + COLUMN_GAP;
    let pitch_y = cell_h + STUB + ABOVE_CHANNEL;
    let columns = columns(spokes.len(), pitch_x, pitch_y);
    let rows = spokes.len().div_ceil(columns.max(1));
    #[allow(clippy::cast_precision_loss)]
    let grid_w = (columns as f64 * pitch_x - COLUMN_GAP).max(0.0);
    // The trunk: in the gutter just left of the middle column (or in the middle gutter).
    let trunk_x = if columns <= 1 {
        cell_w / 2.0
    } else {
        #[allow(clippy::cast_precision_loss)]
        let gutter = (columns / 2) as f64;
        gutter * pitch_x - COLUMN_GAP / 2.0
    };
    let (hub_w, hub_h) = spec.boxes[hub];
    // Centre the hub over the grid, but keep the trunk under it.
    let reach = (hub_w / 2.0 - 12.0).max(0.0);
    let hub_cx = (grid_w / 2.0).clamp(trunk_x - reach, trunk_x + reach);
    let hub_rect = Rect {
        x: hub_cx - hub_w / 2.0,
        y: 0.0,
        w: hub_w,
        h: hub_h,
    };
    let first_row = hub_h + ABOVE_CHANNEL + STUB;
    let mut boxes = vec![Rect::centred(Point::new(0.0, 0.0), 0.0, 0.0); spec.boxes.len()];
    boxes[hub] = hub_rect;
    let mut slot = vec![(0.0, 0.0); spec.boxes.len()];
    for (k, &i) in spokes.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let (column, row) = ((k % columns) as f64, (k / columns) as f64);
        let cx = column * pitch_x + cell_w / 2.0;
        let top = first_row + row * pitch_y;
        let (w, h) = spec.boxes[i];
        boxes[i] = Rect {
            x: cx - w / 2.0,
            y: top,
            w,
            h,
        };
        slot[i] = (cx, top);
    }
    let mut routes = vec![Vec::new(); spec.links.len()];
    // Per row: the leftmost and rightmost arrow, to draw its channel.
    let mut channels: Vec<Option<(f64, f64)>> = vec![None; rows];
    for (edge, &(_, to)) in spec.links.iter().enumerate() {
        if to == hub {
            continue;
        }
        let (cx, top) = slot[to];
        let channel_y = top - STUB;
        routes[edge] = vec![Point::new(cx, channel_y), Point::new(cx, top)];
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let row = ((top - first_row) / pitch_y).round() as usize;
        if let Some(span) = channels.get_mut(row) {
            let (lo, hi) = span.unwrap_or((trunk_x, trunk_x));
            *span = Some((lo.min(cx), hi.max(cx)));
        }
    }
    let mut bus = Vec::new();
    let last = channels.iter().rposition(Option::is_some);
    if let Some(last) = last {
        #[allow(clippy::cast_precision_loss)]
        let bottom = first_row + last as f64 * pitch_y - STUB;
        bus.push(vec![Point::new(trunk_x, hub_h), Point::new(trunk_x, bottom)]);
    }
    for (row, span) in channels.iter().enumerate() {
        if let Some((lo, hi)) = span
            && hi > lo
        {
            #[allow(clippy::cast_precision_loss)]
            let y = first_row + row as f64 * pitch_y - STUB;
            bus.push(vec![Point::new(*lo, y), Point::new(*hi, y)]);
        }
    }
    Layout {
        shape: Shape::Star,
        boxes,
        routes,
        bus,
        labels: Vec::new(),
        width: 0.0,
        height: 0.0,
    }
}

/// How many columns: all spokes in one row up to four, then about `ASPECT` wide.
fn columns(spokes: usize, pitch_x: f64, pitch_y: f64) -> usize {
    if spokes <= 4 {
        return spokes.max(1);
    }
    #[allow(clippy::cast_precision_loss)]
    let ideal = (ASPECT * spokes as f64 * pitch_y / pitch_x).sqrt().ceil();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ideal = ideal as usize;
    ideal.clamp(4, spokes)
}
