//! Build and bind the server (returning the port actually bound), and run
//! it until stopped.

use std::io::Write;
use std::net::SocketAddr;

use actix_web::dev::{Server, Service as _};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use revspend_core::pseudonym::Pseudonymiser;

use crate::{AppState, Config, configure};

/// Binds `bind` and builds the server over `state`, returning it (not yet
/// polled) with the address actually bound, which tells the port when
/// `bind` asked for port 0.
pub fn build_server(state: AppState, bind: &str, workers: usize) -> anyhow::Result<(Server, SocketAddr)> {
    build_shared_server(web::Data::new(state), bind, workers)
}

/// [`build_server`] over a state the caller keeps a handle to (the reload
/// watcher, a test that swaps models under load).
pub fn build_shared_server(
    data: web::Data<AppState>,
    bind: &str,
    workers: usize,
) -> anyhow::Result<(Server, SocketAddr)> {
    let server = HttpServer::new(move || {
        App::new()
            .wrap_fn(|req, srv| {
                let start = std::time::Instant::now();
                let response = srv.call(req);
                async move {
                    let response = response.await?;
                    // The request travels with its response: read after the
                    // handler, so nothing is copied for requests not logged.
                    let req = response.request();
                    if let Some(state) = req.app_data::<web::Data<AppState>>() {
                        let seconds = start.elapsed().as_secs_f64();
                        let status = response.status().as_u16();
                        // Counted under the route pattern, never the raw path:
                        // the resource's name (set to its pattern, no copy),
                        // else the pattern.
                        let route = match req.match_name() {
                            Some(name) => crate::metrics::route_label(name),
                            None => req
                                .match_pattern()
                                .map_or("unmatched", |p| crate::metrics::route_label(&p)),
                        };
                        let method = crate::metrics::method_label(req.method());
                        state.metrics.request(route, method, status, seconds);
                        state.access_log.record(crate::access_log::Request {
                            method,
                            path: req.path(),
                            route,
                            status,
                            seconds,
                        });
                    }
                    Ok(response)
                }
            })
            .app_data(data.clone())
            .configure(configure)
    })
    .workers(workers.max(1))
    .bind(bind)
    .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .with_context(|| format!("{bind} resolved to no address"))?;
    Ok((server.run(), addr))
}

/// Binds, loads the model and the snapshot while answering `/health/live`
/// (and 503 on `/health/ready` and the scoring routes), then announces
/// `listening on http://ADDR` (log and stdout, so scripts can read the port
/// once the server is ready) and serves until stopped. A first load that
/// fails stops the server with its error, before that line.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let pseudonymiser = Pseudonymiser::from_env(
        config.allow_development_key,
        "`serve --allow-development-key` (or REVSPEND_ALLOW_DEVELOPMENT_KEY=true)",
    )?;
    let state = web::Data::new(
        AppState::unloaded(&config, pseudonymiser)?.with_admin_token(config.admin_token.clone()),
    );
    let (server, addr) = build_shared_server(state.clone(), &config.bind, config.workers)?;
    log::info!("bound http://{addr}; loading the model and the online snapshot (ready: 503 until then)");
    let handle = server.handle();
    let serving = actix_web::rt::spawn(server);
    let loading = state.clone();
    let loaded = actix_web::rt::task::spawn_blocking(move || loading.load_first())
        .await
        .map_err(|e| anyhow::anyhow!("loading the model panicked: {e}"))
        .and_then(|r| r);
    if let Err(e) = loaded {
        handle.stop(false).await;
        finish(state).await;
        return Err(e);
    }
    crate::reload::watch(state.clone(), config.reload_interval, config.file_watch);
    log::info!("listening on http://{addr}");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}").context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    drop(stdout);
    let served = serving
        .await
        .context("the HTTP server task failed")
        .and_then(|r| r.context("the HTTP server failed"));
    // The server has stopped (SIGTERM: no new connections, requests in
    // flight finished): write what is queued before exiting.
    finish(state).await;
    served
}

/// Scores the queued shadow rows, persists the bandit and writes and closes
/// the prediction log (they join threads: off the async workers).
async fn finish(state: web::Data<AppState>) {
    let done = actix_web::rt::task::spawn_blocking(move || state.shutdown()).await;
    if done.is_err() {
        log::error!("shutting down the prediction log panicked");
    }
    log::info!("stopped");
}
