//! Facts about the machine: hostname, OS, kernel, boot time and uptime.

use vigie_domain::telemetry::AgentInfo;

use super::{Machine, clip, cpu};

/// Who is sending, read fresh each time (the hostname can change).
pub(super) fn agent_info(m: &Machine, agent_version: &str) -> AgentInfo {
    let line = |relative: &str| {
        m.read(relative)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    let os = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|f| m.read(f).as_deref().and_then(parse_os_release))
        .unwrap_or_else(|| "Linux".to_owned());
    AgentInfo {
        version: clip(agent_version),
        hostname: clip(&line("proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".to_owned())),
        os: clip(&os),
        kernel: clip(&line("proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".to_owned())),
        arch: std::env::consts::ARCH.to_owned(),
        boot_time: m
            .read("proc/stat")
            .as_deref()
            .and_then(cpu::parse_boot_time)
            .unwrap_or(0),
    }
}

/// `PRETTY_NAME` from `os-release` (or `NAME` when there is none), unquoted.
pub(super) fn parse_os_release(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            (k == key)
                .then(|| unquote(v.trim()))
                .filter(|v| !v.is_empty())
        })
    };
    value("PRETTY_NAME").or_else(|| value("NAME"))
}

/// Shell-style quoting as `os-release` uses it: `"…"` with backslash escapes, or `'…'`.
fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// `/proc/uptime`: `12345.67 54321.00`, seconds since boot then idle seconds.
pub(super) fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_names() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n";
        assert_eq!(
            parse_os_release(debian).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let escaped = "# comment\nPRETTY_NAME=\"Say \\\"hi\\\" \\$x\"\n";
        assert_eq!(parse_os_release(escaped).as_deref(), Some("Say \"hi\" $x"));
        assert_eq!(
            parse_os_release("NAME='Alpine Linux'\nPRETTY_NAME=\n").as_deref(),
            Some("Alpine Linux")
        );
        assert_eq!(parse_os_release("NAME=Arch\n").as_deref(), Some("Arch"));
        assert_eq!(parse_os_release("ID=x\n"), None);
    }

    #[test]
    fn uptime_in_whole_seconds() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
        assert_eq!(parse_uptime("-1 0"), None);
        assert_eq!(parse_uptime(""), None);
    }
}
