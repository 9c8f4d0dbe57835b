//! Themes in TOML, helix style:
//!
//! ```toml
//! inherits = "default"          # optional: start from another theme
//! "ui.text" = { fg = "accent", modifiers = ["bold"] }
//! "ui.border" = "accent"        # a bare colour is the foreground
//!
//! [palette]                     # last: keys after a [table] belong to it
//! accent = "#7aa2f7"
//! ```
//!
//! A scope's value is a colour (its foreground) or a table with `fg`, `bg`
//! and `modifiers`; other keys in a table are narrower scopes, so `[ui]` with
//! `text = "white"` sets `ui.text`. Colours are palette names, `#rrggbb`,
//! 0-255, or the terminal's own names (`red`, `lightblue`, ...).
//!
//! A theme is found, by name, in the user's config folder
//! (`$XDG_CONFIG_HOME/baton/themes`, else `~/.config/baton/themes`), then in
//! `themes/` under the working folder, then among those built in. A name with
//! a `/` or ending in `.toml` is a path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::color::ColorSupport;
use super::config_file::{self, FileWarning, Source};
use super::theme::Theme;

/// Themes shipped inside the binary, so a missing folder never breaks it.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("ansi16", include_str!("../../themes/ansi16.toml")),
];

/// How deep `inherits` may chain before it is taken for a loop.
const MAX_DEPTH: usize = 8;

/// A colour as written, with where, so a bad one can be pointed at.
struct ColorRef {
    text: String,
    at: FileWarning,
}

#[derive(Default)]
struct RawStyle {
    fg: Option<ColorRef>,
    bg: Option<ColorRef>,
    modifiers: Modifier,
}

/// A theme file with its parents merged in, colours not yet resolved.
#[derive(Default)]
struct RawTheme {
    palette: HashMap<String, ColorRef>,
    scopes: HashMap<String, RawStyle>,
}

/// The user's config folder for baton.
pub fn config_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("baton"))
}

/// Where a theme's text comes from.
enum Found {
    File(PathBuf),
    BuiltIn(&'static str, &'static str),
}

fn find(name: &str) -> Result<Found, String> {
    if name.contains('/') || name.ends_with(".toml") {
        return Ok(Found::File(PathBuf::from(name)));
    }
    let file = format!("{name}.toml");
    let dirs = [
        config_dir().map(|d| d.join("themes")),
        Some(PathBuf::from("themes")),
    ];
    for dir in dirs.into_iter().flatten() {
        let path = dir.join(&file);
        if path.is_file() {
            return Ok(Found::File(path));
        }
    }
    BUILT_IN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Found::BuiltIn(n, text))
        .ok_or_else(|| {
            let known: Vec<_> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            format!("no theme named {name:?}; built in: {}", known.join(", "))
        })
}

/// Loads a theme by name or path, following `inherits`.
pub fn load(name: &str) -> Result<Theme, FileWarning> {
    let raw = load_raw(name, 0, None)?;
    let title = Path::new(name)
        .file_stem()
        .map_or(name.to_string(), |s| s.to_string_lossy().into_owned());
    resolve(&title, raw)
}

/// The themes `t` cycles through, the chosen one first, each as this
/// terminal can show it, and the problems met loading them. A theme that
/// does not load is replaced by the built-in default (or left out).
pub fn themes(choice: Option<&str>, support: ColorSupport) -> (Vec<Theme>, Vec<FileWarning>) {
    let mut warnings = Vec::new();
    let first = load(choice.unwrap_or("default")).unwrap_or_else(|w| {
        warnings.push(w);
        built_in_default()
    });
    let mut list = vec![first];
    for (name, _) in BUILT_IN {
        if list.iter().any(|t| t.name == *name) {
            continue;
        }
        // The user's file of the same name wins; a bad one falls back to ours.
        match load(name).or_else(|w| {
            warnings.push(w);
            load_built_in(name)
        }) {
            Ok(t) => list.push(t),
            Err(w) => warnings.push(w),
        }
    }
    let list = list.iter().map(|t| t.for_terminal(support)).collect();
    (list, warnings)
}

/// The built-in default. Its text is tested to parse, so this cannot fail.
pub fn built_in_default() -> Theme {
    load_built_in("default").expect("the built-in default theme parses")
}

fn load_built_in(name: &str) -> Result<Theme, FileWarning> {
    let (n, text) = BUILT_IN
        .iter()
        .find(|(n, _)| *n == name)
        .copied()
        .unwrap_or(BUILT_IN[0]);
    let path = PathBuf::from(format!("<built-in>/{n}.toml"));
    let raw = parse(&path, text, 0)?;
    resolve(n, raw)
}

fn load_raw(name: &str, depth: usize, from: Option<&FileWarning>) -> Result<RawTheme, FileWarning> {
    let not_found = |message: String| match from {
        Some(at) => FileWarning {
            message,
            ..at.clone()
        },
        None => FileWarning {
            path: PathBuf::from(name),
            line: 0,
            message,
        },
    };
    match find(name).map_err(not_found)? {
        Found::File(path) => {
            let text = config_file::read(&path)?;
            parse(&path, &text, depth)
        }
        Found::BuiltIn(n, text) => {
            parse(&PathBuf::from(format!("<built-in>/{n}.toml")), text, depth)
        }
    }
}

fn parse(path: &Path, text: &str, depth: usize) -> Result<RawTheme, FileWarning> {
    let src = Source { path, text };
    let table = src.parse()?;
    let mut raw = match table.get("inherits") {
        Some(v) => {
            let DeValue::String(parent) = v.get_ref() else {
                return Err(src.warning(v.span(), "inherits takes a theme name"));
            };
            let at = src.warning(v.span(), "");
            if depth >= MAX_DEPTH {
                return Err(src.warning(v.span(), "inherits goes too deep (a loop?)"));
            }
            load_raw(parent, depth + 1, Some(&at))?
        }
        None => RawTheme::default(),
    };
    for (key, value) in table.iter() {
        match key.get_ref().as_ref() {
            "inherits" => {}
            "palette" => {
                let DeValue::Table(palette) = value.get_ref() else {
                    return Err(src.warning(value.span(), "palette must be a table of colours"));
                };
                for (name, colour) in palette.iter() {
                    let c = color_ref(&src, colour)?;
                    raw.palette.insert(name.get_ref().to_string(), c);
                }
            }
            scope => add_scope(&src, &mut raw, scope, value)?,
        }
    }
    Ok(raw)
}

fn color_ref(src: &Source<'_>, value: &Spanned<DeValue<'_>>) -> Result<ColorRef, FileWarning> {
    match value.get_ref() {
        DeValue::String(s) => Ok(ColorRef {
            text: s.to_string(),
            at: src.warning(value.span(), ""),
        }),
        DeValue::Integer(i) => Ok(ColorRef {
            text: i.as_str().to_string(),
            at: src.warning(value.span(), ""),
        }),
        other => Err(src.warning(
            value.span(),
            format!("expected a colour, found {}", config_file::kind(other)),
        )),
    }
}

const STYLE_KEYS: [&str; 3] = ["fg", "bg", "modifiers"];

fn add_scope(
    src: &Source<'_>,
    raw: &mut RawTheme,
    scope: &str,
    value: &Spanned<DeValue<'_>>,
) -> Result<(), FileWarning> {
    let table: &DeTable<'_> = match value.get_ref() {
        DeValue::Table(t) => t,
        _ => {
            // A bare colour is the scope's foreground; it replaces the parent's style.
            let fg = Some(color_ref(src, value)?);
            raw.scopes.insert(
                scope.to_string(),
                RawStyle {
                    fg,
                    ..RawStyle::default()
                },
            );
            return Ok(());
        }
    };
    let mut style = RawStyle::default();
    let mut has_style = false;
    for (key, v) in table.iter() {
        match key.get_ref().as_ref() {
            "fg" => style.fg = Some(color_ref(src, v)?),
            "bg" => style.bg = Some(color_ref(src, v)?),
            "modifiers" => {
                for (name, span) in config_file::strings(src, v)? {
                    style.modifiers |= modifier(name).ok_or_else(|| {
                        src.warning(
                            span,
                            format!(
                                "unknown modifier {name:?}; known: {}",
                                MODIFIERS.map(|m| m.0).join(", ")
                            ),
                        )
                    })?;
                }
            }
            child => add_scope(src, raw, &format!("{scope}.{child}"), v)?,
        }
        has_style |= STYLE_KEYS.contains(&key.get_ref().as_ref());
    }
    if has_style {
        raw.scopes.insert(scope.to_string(), style);
    }
    Ok(())
}

const MODIFIERS: [(&str, Modifier); 9] = [
    ("bold", Modifier::BOLD),
    ("dim", Modifier::DIM),
    ("italic", Modifier::ITALIC),
    ("underlined", Modifier::UNDERLINED),
    ("slow_blink", Modifier::SLOW_BLINK),
    ("rapid_blink", Modifier::RAPID_BLINK),
    ("reversed", Modifier::REVERSED),
    ("hidden", Modifier::HIDDEN),
    ("crossed_out", Modifier::CROSSED_OUT),
];

fn modifier(name: &str) -> Option<Modifier> {
    MODIFIERS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

/// Turns palette names and colour text into colours.
fn resolve(name: &str, raw: RawTheme) -> Result<Theme, FileWarning> {
    let colour = |c: &ColorRef| -> Result<Color, FileWarning> {
        let text = raw
            .palette
            .get(&c.text)
            .map_or(c.text.as_str(), |p| p.text.as_str());
        text.parse::<Color>().map_err(|_| FileWarning {
            message: format!(
                "unknown colour {:?}: use a palette name, #rrggbb, 0-255 or a name like \"red\"",
                c.text
            ),
            ..c.at.clone()
        })
    };
    for c in raw.palette.values() {
        colour(c)?;
    }
    let mut styles = HashMap::with_capacity(raw.scopes.len());
    for (scope, s) in &raw.scopes {
        let mut style = Style::new().add_modifier(s.modifiers);
        if let Some(fg) = &s.fg {
            style = style.fg(colour(fg)?);
        }
        if let Some(bg) = &s.bg {
            style = style.bg(colour(bg)?);
        }
        styles.insert(scope.clone(), style);
    }
    Ok(Theme::new(name, styles))
}

#[cfg(test)]
#[path = "theme_file_tests.rs"]
mod tests;
