//! `enroll`: create the device key, redeem the token, store the identity the server assigns.
//!
//! The new key is written (mode 0600) before the request and only replaces `device.key` once
//! the server has accepted it, so a refused `--force` re-enrolment leaves the current identity
//! working. The sequence number and the spool carry over: batches still pending are sent under
//! the new identity, with numbers that keep increasing.

use std::fs;

use vigie_domain::clock::Clock;
use vigie_domain::protocol::EnrollRequest;
use vigie_domain::signing::DeviceSigningKey;
use vigie_domain::telemetry::AgentInfo;

use crate::sender::{self, RequestError, http_client};
use crate::state::{Identity, StateDir, StateError};

/// Why enrolment did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("this machine is already enrolled as {0}; use --force to enrol it again")]
    AlreadyEnrolled(String),
    #[error("enrolment refused by the server: {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error(transparent)]
    Request(RequestError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Enrols this machine with the server at `url` (no trailing slash) using `token`.
pub fn enroll(
    dir: &StateDir,
    url: &str,
    token: &str,
    force: bool,
    agent: &AgentInfo,
    clock: &dyn Clock,
) -> Result<Identity, EnrollError> {
    let _lock = dir.lock()?;
    if dir.is_enrolled() && !force {
        let id = dir
            .read_identity()
            .map(|i| i.device_id.to_string())
            .unwrap_or_else(|_| "an unreadable identity".to_owned());
        return Err(EnrollError::AlreadyEnrolled(id));
    }
    let key = DeviceSigningKey::generate();
    let pending = dir.write_pending_key(&key)?;
    let request = EnrollRequest {
        token: token.to_owned(),
        public_key: key.public_key().to_base64(),
        hostname: agent.hostname.clone(),
        os: agent.os.clone(),
        agent_version: agent.version.clone(),
    };
    let response = match sender::enroll(&http_client(), url, &request) {
        Ok(response) => response,
        Err(e) => {
            let _ = fs::remove_file(&pending);
            return Err(match e {
                RequestError::Refused {
                    status,
                    code,
                    message,
                } if status < 500 => EnrollError::Refused {
                    status,
                    code,
                    message,
                },
                other => EnrollError::Request(other),
            });
        }
    };
    dir.commit_key(&pending)?;
    let identity = Identity {
        device_id: response.device_id,
        tenant_id: response.tenant_id,
        client_id: response.client_id,
        site_id: response.site_id,
        server_url: url.trim_end_matches('/').to_owned(),
        enrolled_at_ms: clock.now_ms(),
    };
    dir.write_identity(&identity)?;
    dir.write_config(&response.config)?;
    let mut state = dir.read_state()?;
    if state.revoked || state.last_error.is_some() {
        state.revoked = false;
        state.last_error = None;
        dir.write_state(&state)?;
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::tests::{error, serve};
    use crate::spool::tests::agent;
    use crate::state::tests::scratch;
    use vigie_domain::clock::ManualClock;
    use vigie_domain::protocol::AgentConfig;
    use vigie_domain::signing::DevicePublicKey;

    const ANSWER: &str = r#"{"device_id":"dev-abc","tenant_id":"acme","client_id":"client-1",
        "site_id":"hq","config":{"sample_interval_s":30,"send_interval_s":60,"heartbeat_s":300}}"#;

    #[test]
    fn enrolment_stores_identity_key_and_config() {
        let (url, requests) = serve(vec![(201, vec![], ANSWER.into())]);
        let dir = scratch("enroll");
        let clock = ManualClock::at(1_790_000_000_000);
        let identity = enroll(&dir, &url, "et-x.secret", false, &agent(), &clock).expect("enrols");
        assert_eq!(identity.device_id.as_str(), "dev-abc");
        assert_eq!(dir.read_identity().expect("stored"), identity);
        assert_eq!(
            dir.read_config().expect("config"),
            Some(AgentConfig {
                sample_interval_s: 30,
                send_interval_s: 60,
                heartbeat_s: 300,
                ..AgentConfig::default()
            })
        );
        let sent: EnrollRequest =
            serde_json::from_slice(&requests.recv().expect("request").body).expect("json");
        assert_eq!(sent.token, "et-x.secret");
        assert_eq!(sent.hostname, "srv-test");
        let public = DevicePublicKey::from_base64(&sent.public_key).expect("key");
        assert_eq!(dir.read_key().expect("key").public_key(), public);
        assert!(!dir.root().join("device.key.new").exists());

        // A second enrolment is refused without --force, before anything is sent.
        assert!(matches!(
            enroll(&dir, &url, "et-y.secret", false, &agent(), &clock),
            Err(EnrollError::AlreadyEnrolled(id)) if id == "dev-abc"
        ));
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn a_refused_token_changes_nothing() {
        let (url, _requests) = serve(vec![
            (201, vec![], ANSWER.into()),
            (403, vec![], error("enrollment_token_used_up")),
        ]);
        let dir = scratch("enroll-refused");
        let clock = ManualClock::at(1_790_000_000_000);
        enroll(&dir, &url, "et-x.secret", false, &agent(), &clock).expect("enrols");
        let key_before = dir.read_key().expect("key").public_key();
        let e = enroll(&dir, &url, "et-x.secret", true, &agent(), &clock).expect_err("refused");
        assert!(
            matches!(&e, EnrollError::Refused { status: 403, code, .. } if code == "enrollment_token_used_up"),
            "{e}"
        );
        assert_eq!(dir.read_key().expect("key").public_key(), key_before);
        assert_eq!(
            dir.read_identity().expect("identity").device_id.as_str(),
            "dev-abc"
        );
        assert!(!dir.root().join("device.key.new").exists());
        fs::remove_dir_all(dir.root()).ok();
    }
}
