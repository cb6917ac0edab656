//! Browser tests' support: a chromedriver on a free port, a headless Chromium session over
//! WebDriver (`fantoccini`), waiting for the page, and screenshots under `target/console/`.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub fn driver_path() -> Option<String> {
    if let Ok(p) = std::env::var("DS_CHROMEDRIVER") {
        return Some(p);
    }
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

/// A chromedriver on a free port, killed on drop.
pub struct Driver {
    child: Child,
    pub port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: the browsers it started too, even when a test panicked
        // before closing its session.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_driver() -> Option<Driver> {
    let Some(path) = driver_path() else {
        assert!(
            std::env::var("DS_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "chromedriver not found (install chromium-driver, or run `make test`)"
        );
        eprintln!("console browser test skipped: no chromedriver (set DS_CHROMEDRIVER or install chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver { child, port })
}

pub async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// Polls `check` every 50 ms until it gives `Some`, or fails after `within`.
pub async fn until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < within, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap_or_default() {
        out.push(e.text().await.unwrap_or_default());
    }
    out
}

pub async fn view(c: &Client, name: &str) {
    let css = format!("body[data-view=\"{name}\"]");
    until(Duration::from_secs(5), &format!("view {name}"), || async {
        c.find(Locator::Css(&css)).await.ok().map(|_| ())
    })
    .await;
}

/// Waits until a stream view's follow state (`#conn-state`'s `data-state`) is `want`.
pub async fn conn_state(c: &Client, want: &str) {
    until(Duration::from_secs(5), &format!("the {want} state"), || async {
        let s = c.find(Locator::Css("#conn-state")).await.ok()?.attr("data-state").await.ok()??;
        (s == want).then_some(())
    })
    .await;
}

pub async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

pub async fn type_into(c: &Client, css: &str, text: &str) {
    let e = c
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

pub async fn screenshot(c: &Client, file: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(file), png).unwrap();
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs blocking HTTP off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

pub fn step(n: &mut u32, what: &str) {
    *n += 1;
    println!("console step {n}: {what}: ok");
}
