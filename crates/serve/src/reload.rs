//! Following the registry without a restart: a background thread reloads
//! ([`AppState::reload`]: load, validate, smoke-predict, swap; a refused
//! model leaves the serving one in place) when an alias a variant follows
//! points to another version, the snapshot file changed or the routing
//! file was edited. `POST /admin/reload` does the same at once.
//!
//! Two ways to notice, both only a prompt to check (a cheap `index.json`
//! read and a file stat):
//! - a file-system watch (inotify on Linux) of the registry directory, the
//!   snapshot's and the routing file's, so a promotion is served within
//!   milliseconds;
//! - a periodic check every `--reload-interval-secs`, the fallback where
//!   events are not delivered (some network shares and bind mounts) and
//!   for a watch that could not start.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use actix_web::web;
use notify::{RecursiveMode, Watcher};

use crate::AppState;

/// How long to let a burst of file events settle before checking (a
/// promotion renames a temporary file over `index.json`; build-features
/// writes the snapshot then renames it).
const SETTLE: Duration = Duration::from_millis(50);

/// A file's identity as far as a reload cares: modification time and
/// length (a rename of a new file changes both).
fn stamp(path: Option<&Path>) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path?).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Starts the watcher thread; it lives as long as the process. `every`:
/// the periodic check (none: file events and `POST /admin/reload` only);
/// `files`: watch the registry and snapshot directories.
pub fn watch(state: web::Data<AppState>, every: Option<Duration>, files: bool) {
    let (prompt, prompts) = mpsc::channel::<()>();
    let watcher = if files { file_watch(&state, prompt) } else { None };
    if watcher.is_none() && every.is_none() {
        log::warn!("no file watch and no periodic check: only POST /admin/reload reloads");
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("reload-watcher".into())
        .spawn(move || {
            // Dropped with the thread: the watch lives as long as it.
            let _watcher = watcher;
            let mut seen = stamp(state.snapshot_path());
            let mut routing_seen = stamp(state.routing_path());
            // Versions refused once are not retried until an alias moves
            // again (a refusal is logged and counted once).
            let mut refused: Option<Vec<Option<String>>> = None;
            loop {
                let prompted = match every {
                    Some(every) => prompts.recv_timeout(every),
                    None => prompts.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match prompted {
                    Ok(()) => {
                        std::thread::sleep(SETTLE);
                        while prompts.try_recv().is_ok() {}
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => match every {
                        Some(every) => std::thread::sleep(every),
                        None => return,
                    },
                }
                let now = stamp(state.snapshot_path());
                let snapshot_changed = now != seen;
                let routing_now = stamp(state.routing_path());
                let routing_changed = routing_now != routing_seen;
                let targets = state.variant_targets();
                let alias_moved = targets.iter().any(Option::is_some)
                    && targets != state.served_targets()
                    && Some(&targets) != refused.as_ref();
                if snapshot_changed || routing_changed || alias_moved {
                    match state.reload(snapshot_changed) {
                        Ok(outcome) if outcome.refused.is_empty() => refused = None,
                        Ok(_) | Err(_) => refused = Some(targets),
                    }
                    seen = now;
                    routing_seen = routing_now;
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the reload watcher, the model will not follow the registry: {e}");
    }
}

/// Watches the registry directory and the snapshot's directory (not
/// recursively: `index.json` and the snapshot are replaced by rename in
/// them); every event prompts a check. None when no watch could start
/// (logged; the periodic check remains).
fn file_watch(state: &AppState, prompt: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let mut dirs: Vec<&Path> = Vec::new();
    if let Some((registry, _)) = state.followed() {
        dirs.push(registry);
    }
    if let Some(snapshot) = state.snapshot_path() {
        dirs.push(
            snapshot
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        );
    }
    if dirs.is_empty() {
        return None;
    }
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // The thread may be gone at shutdown: nothing left to prompt.
            let _ = prompt.send(());
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            log::warn!("cannot watch files ({e}); the periodic check alone notices changes");
            return None;
        }
    };
    let mut watching = 0;
    for dir in dirs {
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watching += 1;
                log::info!("watching {} for a new model or snapshot", dir.display());
            }
            Err(e) => log::warn!(
                "cannot watch {} ({e}); the periodic check alone notices changes there",
                dir.display()
            ),
        }
    }
    (watching > 0).then_some(watcher)
}
