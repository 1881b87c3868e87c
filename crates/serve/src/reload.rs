//! Following the registry without a restart: a background thread checks,
//! every `--reload-interval-secs`, whether the alias the server follows
//! points to another version, or the snapshot file changed, and reloads
//! ([`AppState::reload`]: load, validate, smoke-predict, swap; a refused
//! model leaves the serving one in place). `POST /admin/reload` does the
//! same at once.
//!
//! A periodic check, not a file-system watch: the registry is a few files
//! that `registry promote`, the evaluate gate and the monitor rewrite by
//! rename, on local disks, bind mounts and network shares alike, where
//! inotify events are not always delivered; one `index.json` read every few
//! seconds is cheap and always right.

use std::time::{Duration, SystemTime};

use actix_web::web;

use crate::AppState;

/// The snapshot file's identity as far as a reload cares: modification
/// time and length (a rename of a new file changes both).
fn stamp(state: &AppState) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(state.snapshot_path()?).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Starts the watcher thread; it lives as long as the process.
pub fn watch(state: web::Data<AppState>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("reload-watcher".into())
        .spawn(move || {
            let mut seen = stamp(&state);
            // A version refused once is not retried until the alias moves
            // again (a refusal is logged and counted once).
            let mut refused: Option<String> = None;
            loop {
                std::thread::sleep(every);
                let now = stamp(&state);
                let snapshot_changed = now != seen;
                let target = state.alias_target();
                let serving = state
                    .serving()
                    .ok()
                    .and_then(|s| s.origin.registry_version.clone());
                let alias_moved = target.is_some() && target != serving && target != refused;
                if snapshot_changed || alias_moved {
                    match state.reload(snapshot_changed) {
                        Ok(_) => refused = None,
                        Err(_) => refused = target,
                    }
                    seen = now;
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the reload watcher, the model will not follow the registry: {e}");
    }
}
