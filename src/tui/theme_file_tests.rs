use ratatui::style::{Color, Modifier, Style};

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_path(path: &Path) -> Result<Theme, FileWarning> {
    load(path.to_str().unwrap())
}

#[test]
fn every_built_in_theme_parses_and_sets_the_core_scopes() {
    for (name, _) in BUILT_IN {
        let theme = load_built_in(name).unwrap_or_else(|w| panic!("{name}: {w}"));
        assert_eq!(theme.name, *name);
        for scope in [
            "ui.text",
            "ui.selection",
            "ui.key",
            "state.failed",
            "state.completed",
        ] {
            assert!(theme.get(scope).is_some(), "{name} lacks {scope}");
        }
    }
}

#[test]
fn palette_names_and_literal_colours_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "mine.toml",
        "\"ui.text\" = { fg = \"hot\", bg = \"blue\", modifiers = [\"bold\"] }\n\"ui.key\" = \"208\"\n\n[palette]\nhot = \"#ff0000\"\n",
    );
    let theme = load_path(&path).unwrap();
    assert_eq!(theme.name, "mine");
    assert_eq!(
        theme.get("ui.text"),
        Some(
            Style::new()
                .fg(Color::Rgb(255, 0, 0))
                .bg(Color::Blue)
                .add_modifier(Modifier::BOLD)
        )
    );
    assert_eq!(
        theme.get("ui.key"),
        Some(Style::new().fg(Color::Indexed(208)))
    );
}

#[test]
fn nested_tables_are_dotted_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "nested.toml",
        "[ui]\nfg = \"red\"\ntext = { fg = \"green\", focus = \"yellow\" }\n",
    );
    let theme = load_path(&path).unwrap();
    assert_eq!(theme.style("ui"), Style::new().fg(Color::Red));
    assert_eq!(theme.style("ui.text"), Style::new().fg(Color::Green));
    assert_eq!(theme.style("ui.text.focus"), Style::new().fg(Color::Yellow));
    assert_eq!(theme.style("ui.border"), Style::new().fg(Color::Red));
}

#[test]
fn inherits_takes_the_parent_and_overrides_palette_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "base.toml",
        "\"ui.text\" = { fg = \"main\" }\n\"ui.border\" = \"blue\"\n[palette]\nmain = \"red\"\n",
    );
    let child = write(
        dir.path(),
        "child.toml",
        &format!(
            "inherits = \"{}\"\n\"ui.border\" = \"yellow\"\n[palette]\nmain = \"green\"\n",
            dir.path().join("base.toml").display()
        ),
    );
    let theme = load_path(&child).unwrap();
    // The parent's scope, coloured by the child's palette.
    assert_eq!(theme.style("ui.text"), Style::new().fg(Color::Green));
    assert_eq!(theme.style("ui.border"), Style::new().fg(Color::Yellow));
}

#[test]
fn a_built_in_light_theme_inherits_the_default() {
    let light = load_built_in("light").unwrap();
    let dark = built_in_default();
    assert_ne!(light.style("ui.text"), dark.style("ui.text"));
    // Set only in the default; light takes it with its own palette.
    assert!(light.get("json.key").is_some());
}

#[test]
fn bad_theme_files_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("syntax.toml", "\"ui.text\" = { fg = \n", "syntax.toml:1:"),
        (
            "colour.toml",
            "\"ui.border\" = \"red\"\n\n\n\"ui.text\" = { fg = \"nope\" }\n[palette]\nx = \"red\"\n",
            "colour.toml:4: unknown colour \"nope\"",
        ),
        (
            "modifier.toml",
            "\"ui.text\" = { modifiers = [\n  \"bold\",\n  \"sparkly\",\n] }\n",
            "modifier.toml:3: unknown modifier",
        ),
        (
            "palette.toml",
            "palette = 3\n",
            "palette.toml:1: palette must be a table",
        ),
        (
            "parent.toml",
            "\n\ninherits = \"no-such-theme\"\n",
            "parent.toml:3: no theme named",
        ),
        (
            "type.toml",
            "\"ui.text\" = { fg = true }\n",
            "type.toml:1: expected a colour",
        ),
    ];
    for (name, text, want) in cases {
        let path = write(dir.path(), name, text);
        let err = load_path(&path).unwrap_err().to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn an_inherits_loop_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "loop.toml", "");
    std::fs::write(&path, format!("inherits = \"{}\"\n", path.display())).unwrap();
    let err = load_path(&path).unwrap_err().to_string();
    assert!(err.contains("too deep"), "{err}");
}

#[test]
fn a_bad_chosen_theme_falls_back_to_the_default_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", "\"ui.text\" = { fg = \"nope\" }\n");
    let (list, warnings) = themes(path.to_str(), ColorSupport::TrueColor);
    assert_eq!(list[0].name, "default");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].to_string().contains("bad.toml:1"),
        "{}",
        warnings[0]
    );
    let names: Vec<_> = list.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["default", "light", "high-contrast", "ansi16"]);
}

#[test]
fn themes_come_down_to_the_terminal() {
    let (list, _) = themes(Some("default"), ColorSupport::Ansi16);
    let fg = list[0].style("ui.text").fg.unwrap();
    assert!(!matches!(fg, Color::Rgb(..) | Color::Indexed(_)), "{fg:?}");
    let (list, _) = themes(None, ColorSupport::None);
    assert_eq!(list[0].style("ui.text").fg, None);
}
