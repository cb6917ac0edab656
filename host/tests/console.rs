//! The console in a real browser: headless Chromium driven over WebDriver (`fantoccini`)
//! against the real binary. Lists and searches streams, reads a JSON and a binary stream,
//! follows one live while the test appends (and pauses / resumes without losing or repeating a
//! message), creates, appends to and deletes a stream through the page, opens a deep link, shows
//! a server error, and asks for a token in token mode. Screenshots of the list and of a stream
//! page go to `target/console/` on each run.
//!
//! Needs `chromedriver` (Debian `chromium-driver`): `DS_CHROMEDRIVER` names it (`make test` installs
//! it and sets this); without it the test says it was skipped, unless `DS_REQUIRE_BROWSER=1`.

mod common;

use std::time::{Duration, Instant};

use common::browser::*;
use common::{tempdir, Server};
use fantoccini::Locator;

#[test]
fn the_console_in_a_real_browser() {
    let Some(driver) = start_driver() else { return };
    let server = Server::start(&[]);
    let h = http();
    let put = |name: &str, ct: &str, body: Vec<u8>| {
        let r = h
            .put(server.url(&format!("/v1/stream/{name}")))
            .header("Content-Type", ct)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{name}");
    };
    put("json/a", "application/json", br#"[{"k": 1}, {"k": 2}, {"k": 3}]"#.to_vec());
    put("bin/b", "application/octet-stream", (0u8..40).collect());
    put("text/t", "text/plain", b"plain words".to_vec());
    for i in 0..12 {
        put(&format!("list/{i:02}"), "text/plain", Vec::new());
    }
    let base = server.url("/console/");
    let append_url = server.url("/v1/stream/json/a");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        let mut n = 0;
        // 1. The list: the folders at the root, as the listing API's delimiter gives them.
        c.goto(&base).await.unwrap();
        view(&c, "streams").await;
        let folders = until(Duration::from_secs(5), "the folder rows", || async {
            let mut out = Vec::new();
            for r in c.find_all(Locator::Css("tr[data-folder]")).await.ok()? {
                out.push(r.attr("data-folder").await.ok()??);
            }
            (out.len() >= 4).then_some(out)
        })
        .await;
        assert_eq!(folders, ["bin/", "json/", "list/", "text/"]);
        screenshot(&c, "list.png").await;
        step(&mut n, "open the list: 4 folders (screenshot target/console/list.png)");
        // 2. Search by prefix.
        type_into(&c, "#prefix", "json/\n").await;
        until(Duration::from_secs(5), "only json/ rows", || async {
            let rows = c.find_all(Locator::Css("tr[data-stream]")).await.ok()?;
            let mut names = Vec::new();
            for r in rows {
                names.push(r.attr("data-stream").await.ok()??);
            }
            (names == ["json/a"]).then_some(())
        })
        .await;
        step(&mut n, "search by prefix json/");
        // 3. A JSON stream: one compact row per message with its offset; a row expands.
        click(&c, "tr[data-stream=\"json/a\"] a").await;
        view(&c, "stream").await;
        let msgs = until(Duration::from_secs(5), "three JSON rows", || async {
            let t = texts(&c, "#messages tr.mrow td.preview").await;
            (t.len() == 3).then_some(t)
        })
        .await;
        assert_eq!(msgs, [r#"{"k":1}"#, r#"{"k":2}"#, r#"{"k":3}"#]);
        click(&c, "#messages tr.mrow").await;
        let pretty = until(Duration::from_secs(5), "the expanded message", || async {
            texts(&c, "#messages tr.detail pre.pretty").await.pop()
        })
        .await;
        assert_eq!(pretty, "{\n  \"k\": 1\n}");
        let meta = c.find(Locator::Css("#stream-meta")).await.unwrap().text().await.unwrap();
        assert!(meta.contains("application/json"), "{meta}");
        screenshot(&c, "stream.png").await;
        step(
            &mut n,
            "open a JSON stream: 3 rows, the first expanded pretty-printed (screenshot target/console/stream.png)",
        );
        // 4. A binary stream as hex + ASCII (a deep link typed into the address bar).
        c.goto(&format!("{base}#/stream/bin%2Fb")).await.unwrap();
        view(&c, "stream").await;
        click(&c, "#messages tr.mrow").await;
        click(&c, "#messages tr.detail button.tab[data-view=\"hex\"]").await;
        let rows = until(Duration::from_secs(5), "hex rows", || async {
            let t = texts(&c, ".hex-row").await;
            (t.len() == 3).then_some(t)
        })
        .await;
        assert!(
            rows[0].starts_with("00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  |"),
            "{rows:?}"
        );
        assert!(rows[2].starts_with("00000020  20 21 22 23 24 25 26 27"), "{rows:?}");
        step(&mut n, "open a binary stream: hex + ASCII rows");
        // 5. Follow live: a message appended now appears within 2 s.
        c.goto(&format!("{base}#/stream/json%2Fa")).await.unwrap();
        view(&c, "stream").await;
        click(&c, "#live-toggle").await;
        conn_state(&c, "live").await;
        let post = |body: &'static str| {
            let url = append_url.clone();
            blocking(move || {
                let r = http()
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 204);
            })
        };
        post(r#"{"n": 100}"#).await;
        let appended = Instant::now();
        until(Duration::from_secs(2), "the appended message (within 2 s)", || async {
            let t = texts(&c, "#messages tr.mrow").await;
            t.iter().any(|m| m.contains("\"n\":100")).then_some(())
        })
        .await;
        step(
            &mut n,
            &format!("follow live: an append appeared after {} ms", appended.elapsed().as_millis()),
        );
        // 6. Pause, two appends, resume: both appear once, nothing repeated.
        click(&c, "#live-toggle").await;
        conn_state(&c, "paused").await;
        post(r#"{"n": 101}"#).await;
        post(r#"{"n": 102}"#).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let while_paused = texts(&c, "#messages tr.mrow").await;
        assert!(!while_paused.iter().any(|m| m.contains("\"n\":101")), "shown while paused");
        click(&c, "#live-toggle").await;
        let all = until(Duration::from_secs(3), "the messages appended while paused", || async {
            let t = texts(&c, "#messages tr.mrow").await;
            t.iter().any(|m| m.contains("\"n\":102")).then_some(t)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all_later = texts(&c, "#messages tr.mrow").await;
        for n in ["100", "101", "102"] {
            let count = all_later.iter().filter(|m| m.contains(&format!("\"n\":{n}"))).count();
            assert_eq!(count, 1, "message {n} shown {count} times: {all:?}");
        }
        assert_eq!(all_later.len(), 6, "{all_later:?}");
        click(&c, "#live-toggle").await;
        step(&mut n, "pause and resume: 101 and 102 shown once each, 6 messages in all");
        // 7. Create, append and delete through the page.
        c.goto(&format!("{base}#/new")).await.unwrap();
        view(&c, "new").await;
        screenshot(&c, "new.png").await;
        type_into(&c, "#create-name", "ui/made").await;
        let select = c.find(Locator::Css("#create-type")).await.unwrap();
        select.select_by_value("text/plain").await.unwrap();
        click(&c, "#create-submit").await;
        view(&c, "stream").await;
        let head = |name: &'static str| {
            let url = server.url(&format!("/v1/stream/{name}"));
            blocking(move || http().head(url).send().unwrap().status().as_u16())
        };
        assert_eq!(head("ui/made").await, 200);
        type_into(&c, "#append-body", "hello from the console").await;
        click(&c, "#append-submit").await;
        let read_url = server.url("/v1/stream/ui/made?offset=-1");
        until(Duration::from_secs(5), "the append to land", || {
            let url = read_url.clone();
            async move {
                let text = blocking(move || http().get(url).send().unwrap().text().unwrap()).await;
                (text == "hello from the console").then_some(())
            }
        })
        .await;
        click(&c, "#delete-stream").await;
        click(&c, "#confirm-yes").await;
        view(&c, "streams").await;
        assert_eq!(head("ui/made").await, 404);
        step(&mut n, "create, append and delete (with confirmation) through the page");
        // 8. A missing stream says so, without the actions of a stream, and offers to create it.
        c.goto(&format!("{base}#/stream/no%2Fsuch")).await.unwrap();
        let missing = until(Duration::from_secs(5), "the missing notice", || async {
            let e = c.find(Locator::Css("#missing")).await.ok()?;
            e.text().await.ok()
        })
        .await;
        assert!(missing.contains("does not exist"), "{missing}");
        assert!(
            c.find(Locator::Css("#delete-stream")).await.is_err(),
            "actions shown for a missing stream"
        );
        let preset = c.find(Locator::Css("#create-name")).await.unwrap().prop("value").await.unwrap();
        assert_eq!(preset.as_deref(), Some("no/such"));
        step(&mut n, "a missing stream says it does not exist and offers the create form");
        // 9. The server view reads the figures.
        c.goto(&format!("{base}#/server")).await.unwrap();
        view(&c, "server").await;
        // The streams figure is the server's own count (not the page's fallback of 0).
        let port = server.port;
        let streams = blocking(move || common::metric(port, "ds_streams")).await;
        assert!(streams >= 15, "ds_streams {streams}");
        until(Duration::from_secs(6), "the figures", || async {
            let t = c.find(Locator::Css("#fig-streams .fig-value")).await.ok()?.text().await.ok()?;
            (t.trim() == streams.to_string()).then_some(())
        })
        .await;
        let health = c.find(Locator::Css("#health")).await.unwrap().text().await.unwrap();
        assert_eq!(health, "ready");
        let charts = c.find_all(Locator::Css("svg.chart")).await.unwrap().len();
        assert_eq!(charts, 8, "a chart per figure");
        screenshot(&c, "server.png").await;
        step(
            &mut n,
            "the server view: health ready, 8 charts, its stream count equals ds_streams (screenshot target/console/server.png)",
        );
        // 10. Subscriptions: listed, inspected, deleted through the page.
        let sub_url = server.url("/v1/stream/__ds/subscriptions/console-sub");
        {
            let url = sub_url.clone();
            blocking(move || {
                let r = http()
                    .put(url)
                    .header("Content-Type", "application/json")
                    .body(r#"{"type": "pull-wake", "pattern": "json/*", "wake_stream": "wakes/console"}"#)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 201);
            })
            .await;
        }
        c.goto(&format!("{base}#/subscriptions")).await.unwrap();
        view(&c, "subscriptions").await;
        screenshot(&c, "subscriptions.png").await;
        click(&c, "tr[data-subscription=\"console-sub\"] a").await;
        view(&c, "subscription").await;
        screenshot(&c, "subscription.png").await;
        let page = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(
            page.contains("json/a") && page.contains("json/*"),
            "the cursor per stream and the pattern: {page}"
        );
        // Its wake stream does not exist before the first wake: named, not linked to a 404.
        c.find(Locator::Css("#wake-stream-pending"))
            .await
            .expect("the wake stream shown as pending");
        assert!(c.find(Locator::Css("#wake-stream-link")).await.is_err());
        click(&c, "#delete-subscription").await;
        click(&c, "#confirm-yes").await;
        view(&c, "subscriptions").await;
        let gone = blocking(move || http().get(sub_url).send().unwrap().status().as_u16()).await;
        assert_eq!(gone, 404);
        step(&mut n, "a subscription listed, inspected (pattern, cursor per stream) and deleted");
        // 11. A phone-sized window still shows the list (a screenshot to look at).
        c.set_window_size(390, 844).await.unwrap();
        c.goto(&base).await.unwrap();
        view(&c, "streams").await;
        screenshot(&c, "list-phone.png").await;
        step(&mut n, "a phone-sized list (screenshot target/console/list-phone.png)");
        c.close().await.unwrap();
    });
}

#[test]
fn the_console_asks_for_a_token_in_token_mode() {
    let Some(driver) = start_driver() else { return };
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let token = common::issue_token(&tokens, &["*:all"]);
    let server = Server::start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap())]);
    let r = http().put(server.url("/v1/stream/secret/s")).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 201);
    // What an attacker with `chat/:create` stores: a page whose script reads the console's token.
    let script = r#"<p id="stored">stored</p><script>
        let got = "none";
        try { got = localStorage.getItem("ds-console-token") || sessionStorage.getItem("ds-console-token") || "none"; }
        catch (e) { got = "blocked " + e.name; }
        document.title = "ran " + got;
    </script>"#;
    let r = http()
        .put(server.url("/v1/stream/chat/steal"))
        .bearer_auth(&token)
        .header("Content-Type", "text/html")
        .body(script)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let base = server.url("/console/");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        c.goto(&base).await.unwrap();
        let dialog = c
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css("#token-dialog[open]"))
            .await
            .expect("the token dialog opens");
        drop(dialog);
        type_into(&c, "#token-input", &token).await;
        click(&c, "#token-save").await;
        until(Duration::from_secs(5), "the list with the token", || async {
            let rows = c.find_all(Locator::Css("tr[data-folder=\"secret/\"]")).await.ok()?;
            (!rows.is_empty()).then_some(())
        })
        .await;
        println!("console in token mode: asked for a token, then listed with it");
        // The token is in no storage another page of this origin could read.
        let kept = c
            .execute("return [localStorage.length, sessionStorage.length, document.cookie];", vec![])
            .await
            .unwrap();
        assert_eq!(kept, serde_json::json!([0, 0, ""]), "the console stored something");
        // A stored HTML body opened in the same tab (the attack of issue #25): its script must
        // not run, so it can neither read the console's token nor act on this origin.
        let steal = format!("{}?offset=-1&access_token={token}", server.url("/v1/stream/chat/steal"));
        c.goto(&steal).await.unwrap();
        until(Duration::from_secs(5), "the stored page", || async {
            c.find(Locator::Css("#stored")).await.ok().map(|_| ())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let title = c.title().await.unwrap();
        assert!(!title.starts_with("ran"), "a stored script ran on the server's origin: {title:?}");
        println!("console in token mode: a stored text/html body did not run (title {title:?})");
        c.close().await.unwrap();
    });
}
