//! How many colours the terminal shows, and bringing a theme's colours down
//! to that. Over SSH and inside tmux the answer is often fewer than the theme
//! was written for.

use ratatui::style::Color;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColorSupport {
    /// `NO_COLOR` or `--no-color`: text attributes only.
    None,
    /// The terminal's own sixteen colours.
    Ansi16,
    Ansi256,
    TrueColor,
}

impl ColorSupport {
    /// From the environment: `NO_COLOR` (any non-empty value), then
    /// `COLORTERM`, then `TERM`.
    pub fn detect(no_color: bool) -> ColorSupport {
        ColorSupport::from_env(no_color, |k| std::env::var(k).ok())
    }

    pub fn from_env(no_color: bool, var: impl Fn(&str) -> Option<String>) -> ColorSupport {
        if no_color || var("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return ColorSupport::None;
        }
        let colorterm = var("COLORTERM").unwrap_or_default().to_ascii_lowercase();
        if colorterm == "truecolor" || colorterm == "24bit" {
            return ColorSupport::TrueColor;
        }
        let term = var("TERM").unwrap_or_default();
        if term.contains("256color") {
            ColorSupport::Ansi256
        } else {
            ColorSupport::Ansi16
        }
    }

    /// The nearest colour this terminal can show; `None` when it shows none.
    pub fn downgrade(self, color: Color) -> Option<Color> {
        match (self, color) {
            (ColorSupport::None, _) => None,
            (ColorSupport::TrueColor, c) => Some(c),
            (ColorSupport::Ansi256, Color::Rgb(r, g, b)) => {
                Some(Color::Indexed(rgb_to_256(r, g, b)))
            }
            (ColorSupport::Ansi256, c) => Some(c),
            (ColorSupport::Ansi16, Color::Rgb(r, g, b)) => Some(nearest_16(r, g, b)),
            (ColorSupport::Ansi16, Color::Indexed(i)) if i < 16 => Some(ANSI16[i as usize].0),
            (ColorSupport::Ansi16, Color::Indexed(i)) => {
                let (r, g, b) = indexed_rgb(i);
                Some(nearest_16(r, g, b))
            }
            (ColorSupport::Ansi16, c) => Some(c),
        }
    }
}

/// The sixteen colours with xterm's usual values, to measure distance to.
const ANSI16: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

/// Perceptual-ish distance ("redmean"), better than plain RGB for picking.
fn distance((r1, g1, b1): (u8, u8, u8), (r2, g2, b2): (u8, u8, u8)) -> i64 {
    let rmean = (r1 as i64 + r2 as i64) / 2;
    let (dr, dg, db) = (
        r1 as i64 - r2 as i64,
        g1 as i64 - g2 as i64,
        b1 as i64 - b2 as i64,
    );
    (((512 + rmean) * dr * dr) >> 8) + 4 * dg * dg + (((767 - rmean) * db * db) >> 8)
}

fn nearest_16(r: u8, g: u8, b: u8) -> Color {
    ANSI16
        .iter()
        .min_by_key(|(_, rgb)| distance(*rgb, (r, g, b)))
        .map_or(Color::Reset, |(c, _)| *c)
}

const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// The RGB value of a 256-colour index, as xterm defines it.
pub fn indexed_rgb(i: u8) -> (u8, u8, u8) {
    match i {
        0..=15 => ANSI16[i as usize].1,
        16..=231 => {
            let i = i - 16;
            (
                CUBE[(i / 36) as usize],
                CUBE[(i / 6 % 6) as usize],
                CUBE[(i % 6) as usize],
            )
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            (v, v, v)
        }
    }
}

/// Nearest of the colour cube and grey ramp (16..=255). The first sixteen are
/// left out: terminals redefine them, so they are no fixed target.
pub fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    let step = |v: u8| -> usize {
        CUBE.iter()
            .enumerate()
            .min_by_key(|(_, c)| (**c as i16 - v as i16).abs())
            .map_or(0, |(i, _)| i)
    };
    let cube = 16 + 36 * step(r) as u8 + 6 * step(g) as u8 + step(b) as u8;
    let avg = ((r as u16 + g as u16 + b as u16) / 3) as u8;
    let grey = 232 + (avg.saturating_sub(3) / 10).min(23);
    [cube, grey]
        .into_iter()
        .min_by_key(|&i| distance(indexed_rgb(i), (r, g, b)))
        .unwrap_or(cube)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn detection_order() {
        use ColorSupport::*;
        assert_eq!(
            ColorSupport::from_env(false, env(&[("COLORTERM", "truecolor")])),
            TrueColor
        );
        assert_eq!(
            ColorSupport::from_env(false, env(&[("COLORTERM", "24bit")])),
            TrueColor
        );
        assert_eq!(
            ColorSupport::from_env(false, env(&[("TERM", "tmux-256color")])),
            Ansi256
        );
        assert_eq!(
            ColorSupport::from_env(false, env(&[("TERM", "xterm")])),
            Ansi16
        );
        assert_eq!(ColorSupport::from_env(false, env(&[])), Ansi16);
        let no_color = [("NO_COLOR", "1"), ("COLORTERM", "truecolor")];
        assert_eq!(ColorSupport::from_env(false, env(&no_color)), None);
        assert_eq!(
            ColorSupport::from_env(false, env(&[("NO_COLOR", "")])),
            Ansi16
        );
        assert_eq!(
            ColorSupport::from_env(true, env(&[("COLORTERM", "truecolor")])),
            None
        );
    }

    #[test]
    fn rgb_falls_back_to_the_nearest_256_colour() {
        assert_eq!(rgb_to_256(255, 0, 0), 196);
        assert_eq!(rgb_to_256(0, 0, 0), 16);
        assert_eq!(rgb_to_256(255, 255, 255), 231);
        // A mid grey lands on the grey ramp, not the cube.
        assert_eq!(rgb_to_256(128, 128, 128), 244);
        assert_eq!(indexed_rgb(196), (255, 0, 0));
        assert_eq!(indexed_rgb(232), (8, 8, 8));
    }

    #[test]
    fn rgb_and_indexed_fall_back_to_the_nearest_of_sixteen() {
        let s = ColorSupport::Ansi16;
        assert_eq!(s.downgrade(Color::Rgb(250, 10, 10)), Some(Color::LightRed));
        assert_eq!(s.downgrade(Color::Rgb(30, 30, 40)), Some(Color::Black));
        assert_eq!(
            s.downgrade(Color::Rgb(120, 120, 120)),
            Some(Color::DarkGray)
        );
        assert_eq!(s.downgrade(Color::Indexed(2)), Some(Color::Green));
        assert_eq!(s.downgrade(Color::Indexed(231)), Some(Color::White));
        assert_eq!(s.downgrade(Color::Cyan), Some(Color::Cyan));
    }

    #[test]
    fn no_colour_means_none_and_truecolor_keeps_everything() {
        assert_eq!(ColorSupport::None.downgrade(Color::Red), Option::None);
        let c = Color::Rgb(1, 2, 3);
        assert_eq!(ColorSupport::TrueColor.downgrade(c), Some(c));
        assert_eq!(
            ColorSupport::Ansi256.downgrade(Color::Red),
            Some(Color::Red)
        );
    }
}
