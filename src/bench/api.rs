//! The few HTTP API calls the load generator makes, as any client would:
//! register or log in, create an API token, create or find rooms, join them,
//! read history. Every call is bounded by the client's timeout.

use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

/// Longest any single API call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A refusal from the server, with its stable error code.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path} answered {status} {code}: {message}{}", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
pub struct Refused {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

/// A cookie login, long enough to create an API token.
pub struct Login {
    pub user_id: String,
    cookie: String,
    csrf: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RoomInfo {
    pub room_id: String,
    pub name: String,
    #[serde(default)]
    pub owner_id: Option<String>,
    pub last_seq: i64,
    #[serde(default)]
    pub member_count: i64,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
}

enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a Login),
}

impl Api {
    pub fn new(base: &Url) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parley-bench/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: base.clone(),
        })
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("bad path {path}"))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
        let mut request = self.http.request(method.clone(), self.url(path)?);
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => request = request.bearer_auth(token),
            Auth::Cookie(login) => {
                request = request
                    .header("cookie", &login.cookie)
                    .header("x-csrftoken", &login.csrf);
            }
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path} failed"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {path}: reading the answer failed"))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, headers, value))
    }

    /// Calls and expects one of `ok` statuses; anything else is a [`Refused`].
    async fn expect(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
        ok: &[StatusCode],
    ) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
        let (status, headers, value) = self.call(method.clone(), path, auth, body).await?;
        if ok.contains(&status) {
            return Ok((status, headers, value));
        }
        Err(refused(method, path, status, &headers, &value).into())
    }

    fn login_of(headers: &HeaderMap, body: &Value) -> anyhow::Result<Login> {
        let mut cookies = Vec::new();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap_or_default();
            if let Some(pair) = text.split(';').next()
                && (pair.starts_with("sessionid=") || pair.starts_with("csrftoken="))
            {
                cookies.push(pair.to_string());
            }
        }
        let data = &body["data"];
        Ok(Login {
            user_id: data["id"]
                .as_str()
                .ok_or_else(|| anyhow!("the login answer has no user id"))?
                .to_string(),
            cookie: cookies.join("; "),
            csrf: data["csrf_token"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Registers `username`; `Ok(None)` if the name is taken.
    pub async fn register(&self, username: &str, password: &str) -> anyhow::Result<Option<Login>> {
        let path = "/tools/api/auth/register/";
        let body = json!({ "username": username, "password": password });
        let (status, headers, value) = self
            .call(Method::POST, path, Auth::None, Some(body))
            .await?;
        match status {
            StatusCode::CREATED => Ok(Some(Self::login_of(&headers, &value)?)),
            StatusCode::CONFLICT => Ok(None),
            _ => Err(refused(Method::POST, path, status, &headers, &value).into()),
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<Login> {
        let body = json!({ "username": username, "password": password });
        let (_, headers, value) = self
            .expect(
                Method::POST,
                "/tools/api/auth/login/",
                Auth::None,
                Some(body),
                &[StatusCode::OK],
            )
            .await?;
        Self::login_of(&headers, &value)
    }

    pub async fn create_token(&self, login: &Login, name: &str) -> anyhow::Result<String> {
        let (_, _, value) = self
            .expect(
                Method::POST,
                "/tools/api/auth/tokens/",
                Auth::Cookie(login),
                Some(json!({ "name": name })),
                &[StatusCode::CREATED],
            )
            .await?;
        value["data"]["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the token answer has no token"))
    }

    /// The user id a token belongs to; `None` if the token is not (or no longer) valid.
    pub async fn token_user(&self, token: &str) -> anyhow::Result<Option<String>> {
        let path = "/tools/api/auth/me/";
        let (status, headers, value) = self
            .call(Method::GET, path, Auth::Bearer(token), None)
            .await?;
        match status {
            StatusCode::OK => Ok(value["data"]["id"].as_str().map(str::to_string)),
            StatusCode::UNAUTHORIZED => Ok(None),
            _ => Err(refused(Method::GET, path, status, &headers, &value).into()),
        }
    }

    pub async fn my_rooms(&self, token: &str) -> anyhow::Result<Vec<RoomInfo>> {
        self.get_data("/tools/api/chat/rooms/", token).await
    }

    pub async fn room(&self, token: &str, room: &str) -> anyhow::Result<RoomInfo> {
        self.get_data(&format!("/tools/api/chat/{room}/"), token)
            .await
    }

    async fn get_data<T: DeserializeOwned>(&self, path: &str, token: &str) -> anyhow::Result<T> {
        let (_, _, value) = self
            .expect(
                Method::GET,
                path,
                Auth::Bearer(token),
                None,
                &[StatusCode::OK],
            )
            .await?;
        let envelope: Envelope<T> = serde_json::from_value(value)
            .with_context(|| format!("GET {path}: unexpected answer"))?;
        Ok(envelope.data)
    }

    /// Creates a public room with these members (user ids, at most the server's
    /// `--max-members-per-request`).
    pub async fn create_room(
        &self,
        token: &str,
        name: &str,
        members: &[String],
    ) -> anyhow::Result<RoomInfo> {
        let body = json!({ "name": name, "room_type": "public", "members": members });
        let (_, _, value) = self
            .expect(
                Method::POST,
                "/tools/api/chat/rooms/",
                Auth::Bearer(token),
                Some(body),
                &[StatusCode::CREATED],
            )
            .await?;
        let envelope: Envelope<RoomInfo> =
            serde_json::from_value(value).context("unexpected answer to creating a room")?;
        Ok(envelope.data)
    }

    /// Joins a public room (nothing changes if already a member).
    pub async fn join(&self, token: &str, room: &str) -> anyhow::Result<()> {
        self.expect(
            Method::POST,
            &format!("/tools/api/chat/{room}/join/"),
            Auth::Bearer(token),
            None,
            &[StatusCode::OK],
        )
        .await?;
        Ok(())
    }

    /// One history request: its status, how long it took until the whole
    /// answer had arrived, and how many messages it held (counted after the
    /// clock stopped, so parsing is not measured).
    pub async fn history(
        &self,
        token: &str,
        room: &str,
        query: &str,
    ) -> anyhow::Result<(StatusCode, Duration, usize)> {
        let path = format!("/tools/api/chat/{room}/messages/?{query}");
        let started = std::time::Instant::now();
        let response = self
            .http
            .get(self.url(&path)?)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path} failed"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {path}: reading the answer failed"))?;
        let elapsed = started.elapsed();
        #[derive(Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            messages: Vec<&'a serde_json::value::RawValue>,
        }
        let count = serde_json::from_slice::<Page>(&body).map_or(0, |p| p.messages.len());
        Ok((status, elapsed, count))
    }
}

fn refused(
    method: Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Value,
) -> Refused {
    let error = &body["error"];
    Refused {
        method,
        path: path.to_string(),
        status,
        code: error["code"].as_str().unwrap_or("unknown").to_string(),
        message: error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string().chars().take(200).collect()),
        retry_after: headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    }
}
