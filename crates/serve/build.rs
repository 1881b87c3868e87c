//! Records the git commit the server is built from, for `GET /version`.
//! `REVSPEND_GIT_COMMIT` in the build environment wins (an image build has
//! no `.git`); outside a git checkout the route says `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=REVSPEND_GIT_COMMIT");
    let commit = std::env::var("REVSPEND_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]));
    if let Some(commit) = commit {
        println!("cargo:rustc-env=REVSPEND_GIT_COMMIT={commit}");
    }
    // Rebuild when HEAD moves to another commit.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        // Only paths that exist: cargo reruns the script every build for a
        // missing one.
        for path in ["HEAD", "refs/heads", "packed-refs"] {
            let full = format!("{dir}/{path}");
            if std::path::Path::new(&full).exists() {
                println!("cargo:rerun-if-changed={full}");
            }
        }
    }
}
