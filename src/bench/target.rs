//! The server under load: its URL, the address it resolves to, and the rule
//! that a load generator only points at this machine unless told otherwise.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use url::Url;

#[derive(Debug, Clone)]
pub struct Target {
    /// HTTP base URL, e.g. `http://127.0.0.1:8000/`.
    pub url: Url,
    /// `ws://host:port` for the same server.
    pub ws_base: String,
    /// Where the connections go.
    pub addr: SocketAddr,
}

impl Target {
    /// Parses and resolves `url`; refuses a server outside loopback unless `allow_remote`.
    pub async fn resolve(url: &str, allow_remote: bool) -> anyhow::Result<Self> {
        let url = Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
        if url.scheme() != "http" {
            bail!("--url must be http://host:port (the generator speaks plain HTTP and ws://)");
        }
        let host = url
            .host_str()
            .context("--url has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .collect();
        check_addresses(&host, &addrs, allow_remote)?;
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .with_context(|| format!("{host} resolves to no address"))?;
        let ws_base = match addr {
            SocketAddr::V6(v6) => format!("ws://[{}]:{}", v6.ip(), v6.port()),
            SocketAddr::V4(v4) => format!("ws://{v4}"),
        };
        let mut base = url.clone();
        base.set_path("/");
        base.set_query(None);
        Ok(Self {
            url: base,
            ws_base,
            addr,
        })
    }
}

fn check_addresses(host: &str, addrs: &[SocketAddr], allow_remote: bool) -> anyhow::Result<()> {
    if addrs.is_empty() {
        bail!("{host} resolves to no address");
    }
    if !allow_remote && let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!(
            "refusing to load {host} ({}): it is outside loopback. A load generator sends a lot of \
             traffic; point it only at servers you run. Pass --allow-remote if this is one.",
            remote.ip()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_is_allowed_and_remote_is_refused() {
        let local = Target::resolve("http://127.0.0.1:8123", false)
            .await
            .unwrap();
        assert_eq!(local.ws_base, "ws://127.0.0.1:8123");
        assert_eq!(local.url.as_str(), "http://127.0.0.1:8123/");
        let v6 = Target::resolve("http://[::1]:8123/x?y", false)
            .await
            .unwrap();
        assert_eq!(v6.ws_base, "ws://[::1]:8123");
        let refused = Target::resolve("http://10.1.2.3:8000", false)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("--allow-remote"), "{refused}");
        assert!(Target::resolve("http://10.1.2.3:8000", true).await.is_ok());
        assert!(Target::resolve("https://127.0.0.1", false).await.is_err());
    }
}
