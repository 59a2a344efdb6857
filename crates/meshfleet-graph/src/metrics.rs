//! How wide a line of text is, so that every box is sized to its text.
//!
//! The pictures name one font first, DejaVu Sans (on every Linux desktop and in the
//! project's machine images), then Verdana (macOS, Windows) which is about as wide. The
//! advance widths below are DejaVu Sans 2.37's own (Book and Bold, in font units of
//! 1/2048 em, read from its `hmtx` table), so a box sized here holds its text when it is
//! drawn with that font; kerning only makes a line narrower. Characters outside the
//! table count as one em, the widest a Latin glyph gets, so an unknown character can
//! make a box too wide but never too narrow. The picture test renders the SVG with the
//! real font and checks the result.

use std::borrow::Cow;

/// The `font-family` of every text.
pub const FONT_FAMILY: &str = "'DejaVu Sans', Verdana, sans-serif";

const UNITS_PER_EM: f64 = 2048.0;
/// Ascender and descender of DejaVu Sans (`hhea`), in font units.
const ASCENDER: f64 = 1901.0;
const DESCENDER: f64 = 483.0;

/// Advance widths of U+0020..=U+007E, DejaVu Sans Book.
const REGULAR: [u16; 95] = [
    651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690, 1303, 1303, 1303,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716, 1087, 2048, 1401, 1405, 1430, 1577,
    1294, 1178, 1587, 1540, 604, 604, 1343, 1141, 1767, 1532, 1612, 1235, 1612, 1423, 1300, 1251, 1499, 1401,
    2025, 1403, 1251, 1403, 799, 690, 799, 1716, 1024, 1024, 1255, 1300, 1126, 1300, 1260, 721, 1300, 1298,
    569, 569, 1186, 569, 1995, 1298, 1253, 1300, 1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075,
    1303, 690, 1303, 1716,
];

/// Advance widths of U+0020..=U+007E, DejaVu Sans Bold.
const BOLD: [u16; 95] = [
    713, 934, 1067, 1716, 1425, 2052, 1786, 627, 936, 936, 1071, 1716, 778, 850, 778, 748, 1425, 1425, 1425,
    1425, 1425, 1425, 1425, 1425, 1425, 1425, 819, 819, 1716, 1716, 1716, 1188, 2048, 1585, 1561, 1503, 1700,
    1399, 1399, 1681, 1714, 762, 762, 1587, 1305, 2038, 1714, 1741, 1501, 1741, 1577, 1475, 1397, 1663, 1585,
    2259, 1579, 1483, 1485, 936, 748, 936, 1716, 1024, 1024, 1382, 1466, 1214, 1466, 1389, 891, 1466, 1458,
    702, 702, 1362, 702, 2134, 1458, 1407, 1466, 1466, 1010, 1219, 979, 1458, 1335, 1892, 1321, 1335, 1192,
    1458, 748, 1458, 1716,
];

/// A size and weight of the one font.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Font {
    /// Font size in pixels.
    pub size: f64,
    /// Bold or regular.
    pub bold: bool,
}

impl Font {
    /// Cluster names.
    pub const NAME: Self = Self::regular(14.0).with_bold();
    /// The lines under a cluster's name.
    pub const CAPTION: Self = Self::regular(11.0);
    /// Labels on links.
    pub const LABEL: Self = Self::regular(10.0);
    /// The legend.
    pub const LEGEND: Self = Self::regular(12.0);
    /// The title line.
    pub const TITLE: Self = Self::regular(15.0).with_bold();

    const fn regular(size: f64) -> Self {
        Self { size, bold: false }
    }

    const fn with_bold(self) -> Self {
        Self { bold: true, ..self }
    }

    /// Width of `text` on one line.
    pub fn width(self, text: &str) -> f64 {
        let units: u32 = text.chars().map(|c| u32::from(self.advance(c))).sum();
        f64::from(units) * self.size / UNITS_PER_EM
    }

    /// Distance from the baseline up to the top of the tallest glyph.
    pub fn ascent(self) -> f64 {
        ASCENDER * self.size / UNITS_PER_EM
    }

    /// Distance from the baseline down to the bottom of the lowest glyph.
    pub fn descent(self) -> f64 {
        DESCENDER * self.size / UNITS_PER_EM
    }

    /// `text`, shortened in the middle with `…` until it is at most `max` wide. The
    /// middle goes because both ends of a cluster name or a host name tell most.
    pub fn fit(self, text: &str, max: f64) -> Cow<'_, str> {
        if self.width(text) <= max {
            return Cow::Borrowed(text);
        }
        let chars: Vec<char> = text.chars().collect();
        let mut keep = chars.len().saturating_sub(1);
        while keep > 0 {
            let head = keep.div_ceil(2);
            let tail = keep - head;
            let short: String = chars[..head]
                .iter()
                .chain(std::iter::once(&'…'))
                .chain(&chars[chars.len() - tail..])
                .collect();
            if self.width(&short) <= max {
                return Cow::Owned(short);
            }
            keep -= 1;
        }
        Cow::Borrowed("…")
    }

    fn advance(self, c: char) -> u16 {
        let table = if self.bold { &BOLD } else { &REGULAR };
        match c {
            ' '..='~' => table[c as usize - 0x20],
            // The status symbols and the ellipsis (same width in both weights).
            '✓' | '×' | '→' => 1716,
            '‼' if self.bold => 1284,
            '‼' => 994,
            '·' if self.bold => 778,
            '·' => 651,
            _ => 2048,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_add_advances() {
        // "a" is 1255 units: 1255 / 2048 * 20 px.
        let font = Font::regular(20.0);
        assert!((font.width("aa") - 2.0 * 1255.0 * 20.0 / 2048.0).abs() < 1e-9);
        assert!(Font::NAME.width("studio") > Font::regular(14.0).width("studio"));
    }

    #[test]
    fn fit_shortens_in_the_middle() {
        let font = Font::CAPTION;
        let long = "gateway a-very-long-host-name.of.some.cluster.example.com:30143";
        let short = font.fit(long, 150.0);
        assert!(font.width(&short) <= 150.0, "{short}");
        assert!(short.starts_with("gateway") && short.ends_with(":30143") && short.contains('…'));
        assert_eq!(font.fit("pro", 150.0), "pro");
    }
}
