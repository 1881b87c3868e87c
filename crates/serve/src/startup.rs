//! Build and bind the server (returning the port actually bound), and run
//! it until stopped.

use std::io::Write;
use std::net::SocketAddr;

use actix_web::dev::{Server, Service as _};
use actix_web::{App, HttpServer, middleware, web};
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
            .wrap(middleware::Logger::default())
            .wrap_fn(|req, srv| {
                // Counted under the route pattern, never the raw path.
                let start = std::time::Instant::now();
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                let method = req.method().as_str().to_owned();
                let state = req.app_data::<web::Data<AppState>>().cloned();
                let response = srv.call(req);
                async move {
                    let response = response.await?;
                    if let Some(state) = state {
                        state.metrics.request(
                            &route,
                            &method,
                            response.status().as_u16(),
                            start.elapsed().as_secs_f64(),
                        );
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

/// Loads the state, binds, announces `listening on http://ADDR` (log and
/// stdout, so scripts can read the port) and serves until stopped.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let pseudonymiser = Pseudonymiser::from_env(
        config.allow_development_key,
        "`serve --allow-development-key` (or REVSPEND_ALLOW_DEVELOPMENT_KEY=true)",
    )?;
    let state =
        web::Data::new(AppState::load(&config, pseudonymiser)?.with_admin_token(config.admin_token.clone()));
    if let Some(every) = config.reload_interval {
        crate::reload::watch(state.clone(), every);
    }
    let (server, addr) = build_shared_server(state, &config.bind, config.workers)?;
    log::info!("listening on http://{addr}");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}").context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    drop(stdout);
    server.await.context("the HTTP server failed")
}
