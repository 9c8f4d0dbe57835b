//! What `/proc` says about processes: parent, start time, state, and one
//! variable of the environment a process was started with.

use std::collections::HashMap;

/// One process, as `/proc/PID/stat` described it when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// Clock ticks after boot at which it started: with the pid, it names
    /// one process (a pid reused later has a later start).
    pub start: u64,
    /// `Z` for a zombie, `X` for one being reaped.
    pub state: char,
}

impl Proc {
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// `/proc/PID/stat` of one process, if it still exists.
pub(super) fn stat(pid: i32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
/// majflt cmajflt utime stime cutime cstime priority nice threads
/// itrealvalue starttime ...": the command name may hold spaces and
/// parentheses, so the fields are counted after the last `)`.
fn parse_stat(pid: i32, text: &str) -> Option<Proc> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every process visible now. A process that ends while it is read is
/// simply left out.
pub(super) fn all() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// Each process's children, by parent pid.
pub(super) fn children(procs: &[Proc]) -> HashMap<i32, Vec<Proc>> {
    let mut out: HashMap<i32, Vec<Proc>> = HashMap::new();
    for p in procs {
        out.entry(p.ppid).or_default().push(*p);
    }
    out
}

/// Every descendant of `root` (not `root` itself) in `tree`.
pub(super) fn descendants(tree: &HashMap<i32, Vec<Proc>>, root: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for child in tree.get(&pid).into_iter().flatten() {
            // A pid cannot be its own ancestor, but a reused one read in a
            // torn scan could look so; never walk a pid twice.
            if child.pid != root && !out.iter().any(|p: &Proc| p.pid == child.pid) {
                out.push(*child);
                stack.push(child.pid);
            }
        }
    }
    out
}

/// What a process's environment held for `name` when it started; `None`
/// when it has no such variable or cannot be read (gone, a zombie, or
/// another user's).
pub(super) fn env_var(pid: i32, name: &str) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    find_var(&bytes, name)
}

fn find_var(environ: &[u8], name: &str) -> Option<String> {
    environ.split(|b| *b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names() {
        let line = "4242 (a (b) c) S 17 4242 4242 0 -1 4194304 134 0 0 0 0 0 0 0 20 0 1 0 571694 2560000 346";
        let p = parse_stat(4242, line).unwrap();
        assert_eq!((p.ppid, p.start, p.state), (17, 571694, 'S'));
        assert!(!p.is_dead());
        assert!(parse_stat(1, "1 (init) S").is_none());
    }

    #[test]
    fn this_process_is_seen_with_its_parent() {
        let me = std::process::id() as i32;
        let p = stat(me).unwrap();
        // SAFETY: getppid has no failure mode.
        assert_eq!(p.ppid, unsafe { libc::getppid() });
        assert!(all().iter().any(|q| q.pid == me));
    }

    #[test]
    fn variables_are_found_by_whole_name() {
        let env = b"PATH=/bin\0BATON_ATTEMPT_X=no\0BATON_ATTEMPT=7.3\0";
        assert_eq!(find_var(env, "BATON_ATTEMPT").as_deref(), Some("7.3"));
        assert_eq!(find_var(env, "HOME"), None);
    }

    #[test]
    fn descendants_walk_the_whole_subtree() {
        let p = |pid, ppid| Proc {
            pid,
            ppid,
            start: 0,
            state: 'S',
        };
        let procs = [p(10, 1), p(11, 10), p(12, 11), p(13, 10), p(20, 1)];
        let tree = children(&procs);
        let mut got: Vec<i32> = descendants(&tree, 10).iter().map(|p| p.pid).collect();
        got.sort();
        assert_eq!(got, [11, 12, 13]);
    }
}
