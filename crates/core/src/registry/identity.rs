//! Who acts on the registry and when: the time every change and log line
//! carries, the user the caller claims to be, and the operating-system user
//! recorded beside that claim.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, RFC 3339 in UTC to the second.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Who says they are acting: `REVSPEND_USER`, else `USER`, else
/// `unknown`. A claim anyone can set; [`os_user`] is recorded beside it.
pub fn current_user() -> String {
    std::env::var("REVSPEND_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The operating-system user running this process: the real uid (from
/// `/proc/self/status`) with its name from `/etc/passwd`, as
/// `alice (uid 1000)`; `uid 1000` when the uid has no passwd entry; `USER`
/// (marked unverified) or `unknown` where `/proc` is not available. No
/// environment variable can change it on Linux.
pub fn os_user() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| real_uid(&status));
    match uid {
        Some(uid) => {
            let name = std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|passwd| passwd_name(&passwd, uid));
            match name {
                Some(name) => format!("{name} (uid {uid})"),
                None => format!("uid {uid}"),
            }
        }
        None => std::env::var("USER").map_or_else(
            |_| "unknown".to_owned(),
            |user| format!("{user} (from USER, unverified)"),
        ),
    }
}

/// The real uid: the first number of the `Uid:` line of `/proc/<pid>/status`.
fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// The name of `uid` in an `/etc/passwd` text (`name:x:uid:gid:...`).
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 item 15: the OS user comes from the real uid and the passwd
    /// file, not from an environment variable.
    #[test]
    fn the_os_user_is_the_real_uid_and_its_passwd_name() {
        let status = "Name:\tregistry\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(
            real_uid(status),
            Some(1000),
            "the real uid, not the effective one"
        );
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1001), None);
        assert_eq!(real_uid("Name: x\n"), None);
        let me = os_user();
        assert!(me.contains("uid ") || me.contains("unverified"), "{me}");
    }

    #[test]
    fn the_time_is_rfc3339_utc() {
        let t = now_rfc3339();
        assert!(t.ends_with('Z') && t.len() == 20, "{t}");
    }
}
