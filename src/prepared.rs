//! Everything start-up can fail on, done once before anything is bound: the
//! configuration, the credential verifiers (keys, key families, the HTTPS clients
//! for reana-server and the JWK Set), the TLS certificate pair and the log filter.
//! `--check-config` builds a [`Prepared`] and stops; the gateway binds from one, so
//! nothing is built twice and no error of these kinds can appear after start-up.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError};
use crate::logging;
use crate::tls::ReloadingCert;

/// A validated configuration with what it names already loaded.
pub struct Prepared {
    pub(crate) config: Config,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) tls: Option<(Arc<ReloadingCert>, TlsAcceptor)>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Loads and checks everything `config` names; the error names the key.
    pub fn new(config: Config) -> Result<Prepared, ConfigError> {
        logging::check(&config.log)?;
        let auth = Arc::new(Authenticator::new(&config.auth)?);
        let tls = match &config.server.tls {
            None => None,
            Some(files) => {
                let bad = |e: crate::tls::TlsError| {
                    ConfigError(format!("`server.tls_cert`, `server.tls_key`: {e}"))
                };
                let cert = ReloadingCert::new(files).map_err(bad)?;
                let acceptor = cert.acceptor().map_err(bad)?;
                Some((cert, acceptor))
            }
        };
        Ok(Prepared { config, auth, tls })
    }

    /// The configuration it was prepared from.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
