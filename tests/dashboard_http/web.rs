//! HTTP helpers of tests/dashboard_http.rs: GET and form POST as a browser sends them, the
//! session cookie and CSRF token of a page, polling a page and reading the event stream.

use std::net::SocketAddr;
use std::time::Duration;
/// One HTTP answer.
pub struct Answer {
    pub status: u16,
    pub set_cookie: Vec<String>,
    pub body: String,
}

pub async fn get(url: &str, cookie: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new().get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    answer(req.send().await.unwrap()).await
}

pub async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let set_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    Answer {
        status,
        set_cookie,
        body: resp.text().await.unwrap(),
    }
}

/// POSTs a form from a page of `addr` (Origin set as a browser sets it).
pub async fn post(
    addr: SocketAddr,
    path: &str,
    form: &str,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    if !extra.iter().any(|(k, _)| *k == "origin") {
        req = req.header("origin", format!("http://{addr}"));
    }
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    answer(req.send().await.unwrap()).await
}

/// A browser's session: the session cookie a page set and the page's CSRF token.
pub async fn session(addr: SocketAddr, path: &str) -> (String, String) {
    let page = get(&format!("http://{addr}{path}"), None).await;
    let cookie = page
        .set_cookie
        .iter()
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|kv| kv.starts_with("serin_session="))
        })
        .expect("a session cookie")
        .to_string();
    let csrf = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#)
        .unwrap()
        .captures(&page.body)
        .expect("a csrf field")[1]
        .to_string();
    (cookie, csrf)
}

/// Polls `url` until its body contains `needle` (10 s at most).
pub async fn wait_for_page(url: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = get(url, None).await;
        if page.body.contains(needle) {
            return page.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle} never in {url}:\n{}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the event stream until it has sent `needle` (30 s at most); returns what was read.
pub async fn read_stream_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle} in the stream:\n{seen}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

/// Stops the child process when the test ends, however it ends.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
