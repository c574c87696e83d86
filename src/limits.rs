//! Abuse limits: the per-user message and image-upload rates and login
//! throttling. With Redis
//! they count across nodes; without it (or while it is unreachable) each node
//! counts alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::bus::RedisLink;
use crate::config::Config;
use crate::domain::ids::UserId;
use crate::domain::user::username_key;

pub struct Limits {
    messages: DefaultKeyedRateLimiter<UserId>,
    clock: DefaultClock,
    message_rate: u32,
    message_burst: u32,
    logins: LoginThrottle,
    redis: Option<Arc<RedisLink>>,
    image_uploads: DefaultKeyedRateLimiter<UserId>,
    image_uploads_per_minute: u32,
    uploads: DefaultKeyedRateLimiter<UserId>,
    uploads_per_minute: u32,
}

impl Limits {
    pub fn new(config: &Config, redis: Option<Arc<RedisLink>>) -> Self {
        let rate = NonZeroU32::new(config.message_rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.message_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            messages: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
            message_rate: config.message_rate,
            message_burst: config.message_burst,
            logins: LoginThrottle::new(
                config.login_max_failures,
                config.login_max_failures_per_ip,
                config.login_window,
            ),
            redis,
            image_uploads: RateLimiter::keyed(image_upload_quota(config.image_uploads_per_minute)),
            image_uploads_per_minute: config.image_uploads_per_minute,
            uploads: RateLimiter::keyed(image_upload_quota(config.uploads_per_minute)),
            uploads_per_minute: config.uploads_per_minute,
        }
    }

    /// Redis, when configured and currently reachable.
    fn shared(&self) -> Option<&RedisLink> {
        self.redis.as_deref().filter(|r| r.is_connected())
    }

    /// Counts one message for `user`; `Err(wait)` if over the rate.
    pub async fn check_message(&self, user: UserId) -> Result<(), Duration> {
        if let Some(redis) = self.shared() {
            match redis
                .rate(
                    &format!("msg:{user}"),
                    self.message_rate,
                    self.message_burst,
                )
                .await
            {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(wait),
                Err(err) => {
                    tracing::debug!(error = %err, "shared rate limit unavailable; counting locally")
                }
            }
        }
        self.messages
            .check_key(&user)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Counts one image upload for `user`: up to `--image-uploads-per-minute`
    /// at once, refilled evenly over the minute. `Err(wait)` if over it.
    pub async fn check_image_upload(&self, user: UserId) -> Result<(), Duration> {
        self.check_per_minute(
            &self.image_uploads,
            "img",
            self.image_uploads_per_minute,
            user,
        )
        .await
    }

    /// Counts one attachment upload for `user`, as [`Limits::check_image_upload`]
    /// with `--uploads-per-minute`.
    pub async fn check_upload(&self, user: UserId) -> Result<(), Duration> {
        self.check_per_minute(&self.uploads, "upl", self.uploads_per_minute, user)
            .await
    }

    async fn check_per_minute(
        &self,
        local: &DefaultKeyedRateLimiter<UserId>,
        key: &str,
        per_minute: u32,
        user: UserId,
    ) -> Result<(), Duration> {
        let per_minute = per_minute.max(1);
        if let Some(redis) = self.shared() {
            let interval = Duration::from_secs(60) / per_minute;
            match redis
                .rate_every(&format!("{key}:{user}"), interval, per_minute)
                .await
            {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(wait),
                Err(err) => {
                    tracing::debug!(error = %err, "shared upload rate unavailable; counting locally")
                }
            }
        }
        local
            .check_key(&user)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// `Err(retry_after)` if this username or IP failed to log in too often.
    pub async fn check_login(&self, username: &str, ip: IpAddr) -> Result<(), Duration> {
        if let Some(redis) = self.shared() {
            let keys = LoginThrottle::keys(username, ip);
            match redis.counts(&keys).await {
                Ok(counts) => return self.logins.judge(&counts),
                Err(err) => tracing::debug!(error = %err, "shared login throttle unavailable"),
            }
        }
        self.logins.check(username, ip, Instant::now())
    }

    pub async fn login_failed(&self, username: &str, ip: IpAddr) {
        if let Some(redis) = self.shared()
            && redis
                .increment(&LoginThrottle::keys(username, ip), self.logins.window)
                .await
                .is_ok()
        {
            return;
        }
        self.logins.record_failure(username, ip, Instant::now());
    }

    pub async fn login_succeeded(&self, username: &str) {
        if let Some(redis) = self.shared() {
            let _ = redis.delete(&[LoginThrottle::user_key(username)]).await;
        }
        self.logins.record_success(username);
    }

    /// Forgets idle state so memory stays bounded.
    pub fn housekeeping(&self) {
        self.messages.retain_recent();
        self.messages.shrink_to_fit();
        self.image_uploads.retain_recent();
        self.uploads.retain_recent();
        self.image_uploads.shrink_to_fit();
        self.logins.forget_expired(Instant::now());
    }
}

fn image_upload_quota(per_minute: u32) -> Quota {
    let burst = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_secs(60) / burst.get())
        .map_or(Quota::per_minute(burst), |q| q.allow_burst(burst))
}

/// Failed logins counted per username and per client IP over a fixed window.
pub struct LoginThrottle {
    max_per_user: u32,
    max_per_ip: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginThrottle {
    pub fn new(max_per_user: u32, max_per_ip: u32, window: Duration) -> Self {
        Self {
            max_per_user,
            max_per_ip,
            window,
            failures: Mutex::default(),
        }
    }

    /// The same account whatever the case or surrounding spaces (login trims
    /// the name before looking it up), so `" alice"` cannot get a fresh count.
    fn user_key(username: &str) -> String {
        format!("login:u:{}", username_key(username.trim()))
    }

    fn ip_key(ip: IpAddr) -> String {
        format!("login:i:{ip}")
    }

    fn keys(username: &str, ip: IpAddr) -> Vec<String> {
        vec![Self::user_key(username), Self::ip_key(ip)]
    }

    /// Applies the limits to shared (count, time left in window) pairs, user first.
    fn judge(&self, counts: &[(u32, Duration)]) -> Result<(), Duration> {
        let limits = [self.max_per_user, self.max_per_ip];
        let wait = counts
            .iter()
            .zip(limits)
            .filter(|((count, _), max)| count >= max)
            .map(|((_, left), _)| (*left).max(Duration::from_secs(1)))
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// `Err(retry_after)` if this username or IP failed too often recently.
    pub fn check(&self, username: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for (key, max) in [
            (Self::user_key(username), self.max_per_user),
            (Self::ip_key(ip), self.max_per_ip),
        ] {
            if let Some((started, count)) = failures.get(&key) {
                let ends = *started + self.window;
                if *count >= max && ends > now {
                    wait = wait.max(ends - now);
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn record_failure(&self, username: &str, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in [Self::user_key(username), Self::ip_key(ip)] {
            let entry = failures.entry(key).or_insert((now, 0));
            if entry.0 + self.window <= now {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// A successful login clears the username's failures (not the IP's).
    pub fn record_success(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&Self::user_key(username));
    }

    fn forget_expired(&self, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, (started, _)| *started + self.window > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_max_failures_until_the_window_ends() {
        let throttle = LoginThrottle::new(3, 10, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check("Ann", ip, t0).is_ok());
            throttle.record_failure("ann", ip, t0);
        }
        let wait = throttle
            .check("ANN", ip, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Other users from the same IP are not yet blocked.
        assert!(throttle.check("bob", ip, t0).is_ok());
        assert!(
            throttle
                .check("ann", ip, t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn spaces_around_the_username_do_not_make_a_new_count() {
        let throttle = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for name in ["alice", " alice", "ALICE\t"] {
            throttle.record_failure(name, ip, t0);
        }
        for name in ["alice", " Alice ", "\nalice"] {
            assert!(throttle.check(name, ip, t0).is_err(), "{name:?}");
        }
        throttle.record_success(" alice ");
        assert!(throttle.check("alice", ip, t0).is_ok());
    }

    #[test]
    fn ip_limit_spans_usernames() {
        let throttle = LoginThrottle::new(100, 2, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        throttle.record_failure("a", ip, t0);
        throttle.record_failure("b", ip, t0);
        assert!(throttle.check("c", ip, t0).is_err());
        assert!(throttle.check("c", "10.0.0.2".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn success_clears_the_username() {
        let throttle = LoginThrottle::new(1, 10, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        throttle.record_failure("ann", ip, t0);
        assert!(throttle.check("ann", ip, t0).is_err());
        throttle.record_success("ann");
        assert!(throttle.check("ann", ip, t0).is_ok());
    }
}
