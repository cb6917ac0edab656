//! The console's everyday views in a real browser (headless Chromium over WebDriver against the
//! real binary): the folder tree from the listing API's `delimiter` and sorting; the message
//! table (offsets that read back, expand, keyboard, filter by text and JSON path, the row cap,
//! jump to an offset, copy); errors beside the form that caused them; metadata kept current
//! while following; notices cleared on navigation; the theme switch; the favicon; a scoped
//! token's view (no listing, open by name, who is signed in) and a cancelled token dialog.
//! Screenshots go to `target/console/`.

mod common;

use std::time::Duration;

use common::browser::*;
use common::{tempdir, Server};
use fantoccini::{Client, Locator};
use serde_json::Value;

async fn attrs(c: &Client, css: &str, attr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap_or_default() {
        out.push(e.attr(attr).await.ok().flatten().unwrap_or_default());
    }
    out
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.map(|v| v.len()).unwrap_or(0)
}

async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until `css` matches exactly `n` elements.
async fn until_count(c: &Client, css: &str, n: usize) {
    until(Duration::from_secs(5), &format!("{n} of {css}"), || async {
        (count(c, css).await == n).then_some(())
    })
    .await;
}

fn put(server: &Server, name: &str, ct: &str, body: &[u8]) {
    let r = http()
        .put(server.url(&format!("/v1/stream/{name}")))
        .header("Content-Type", ct)
        .body(body.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{name}");
}

#[test]
fn the_tree_the_message_table_and_feedback() {
    let Some(driver) = start_driver() else { return };
    let server = Server::start(&[]);
    put(&server, "app/a", "text/plain", &[b'a'; 10]);
    put(&server, "app/b", "text/plain", &[b'b'; 100]);
    put(&server, "app/sub/x", "text/plain", b"x");
    put(&server, "logs/2026/01", "text/plain", b"");
    put(&server, "notes/n1", "text/plain", b"");
    put(&server, "top", "text/plain", b"");
    for i in 0..130 {
        put(&server, &format!("many/{i:03}"), "text/plain", b"");
    }
    let orders: Vec<String> = (0..25)
        .map(|i| format!(r#"{{"id": {i}, "status": "{}"}}"#, if i % 2 == 0 { "paid" } else { "open" }))
        .collect();
    put(&server, "orders", "application/json", format!("[{}]", orders.join(",")).as_bytes());
    let big: Vec<String> = (0..450).map(|i| format!("{i}")).collect();
    put(&server, "big", "application/json", format!("[{}]", big.join(",")).as_bytes());
    put(&server, "log", "text/plain", b"alpha\n");
    let base = server.url("/console/");
    let api = server.url("/v1/stream");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        let mut n = 0;
        // 1. The root's folders are the API's common prefixes; its streams those directly under it.
        let url = format!("{api}/__ds/streams?delimiter=/");
        let listed: Value =
            blocking(move || serde_json::from_str::<Value>(&http().get(url).send().unwrap().text().unwrap()).unwrap()).await;
        let want: Vec<String> = listed["common_prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["prefix"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(want, ["app/", "logs/", "many/", "notes/"]);
        c.goto(&base).await.unwrap();
        view(&c, "streams").await;
        until_count(&c, "tr[data-folder]", 4).await;
        assert_eq!(attrs(&c, "tr[data-folder]", "data-folder").await, want);
        assert_eq!(attrs(&c, "tr[data-stream]", "data-stream").await, ["big", "log", "orders", "top"]);
        // Into a folder: its subfolder and its streams; the breadcrumbs lead back.
        click(&c, "tr[data-folder=\"app/\"] a").await;
        until_count(&c, "tr[data-stream]", 2).await;
        assert_eq!(attrs(&c, "tr[data-folder]", "data-folder").await, ["app/sub/"]);
        assert!(text_of(&c, "#crumbs").await.contains("app/"));
        // Sorting by size, descending: the larger stream first, and the URL keeps it.
        click(&c, "button.sort[data-sort=\"bytes\"]").await;
        until(Duration::from_secs(5), "ascending", || async {
            c.current_url().await.ok()?.as_str().contains("sort=bytes-asc").then_some(())
        })
        .await;
        click(&c, "button.sort[data-sort=\"bytes\"]").await;
        until(Duration::from_secs(5), "app/b first", || async {
            let names = attrs(&c, "tr[data-stream]", "data-stream").await;
            (names == ["app/b", "app/a"]).then_some(())
        })
        .await;
        assert!(c.current_url().await.unwrap().as_str().contains("sort=bytes-desc"));
        screenshot(&c, "tree.png").await;
        step(
            &mut n,
            "the tree: root folders equal the API's, a folder's contents, sorted by size (target/console/tree.png)",
        );

        // 2. JSON rows with offsets that read back, expanded by keyboard.
        c.goto(&format!("{base}#/stream/orders")).await.unwrap();
        view(&c, "stream").await;
        until_count(&c, "#messages tr.mrow", 25).await;
        let offsets = attrs(&c, "#messages tr.mrow", "data-offset").await;
        for i in [0usize, 7, 24] {
            let url = format!("{api}/orders?offset={}", offsets[i]);
            let page: Value =
                blocking(move || serde_json::from_str::<Value>(&http().get(url).send().unwrap().text().unwrap()).unwrap()).await;
            assert_eq!(page[0]["id"], i, "row {i}'s offset {} reads back its own message", offsets[i]);
        }
        c.find(Locator::Css("#messages tr.mrow")).await.unwrap().click().await.unwrap();
        until_count(&c, "#messages tr.detail", 1).await;
        c.active_element().await.unwrap().send_keys("\u{E015}").await.unwrap(); // ArrowDown
        c.active_element().await.unwrap().send_keys("\u{E007}").await.unwrap(); // Enter
        until_count(&c, "#messages tr.mrow[aria-expanded=\"true\"]", 2).await;
        step(
            &mut n,
            "25 JSON rows whose offsets read back their own messages; expand by click and keyboard",
        );

        // 3. Filters: a JSON path, then text.
        type_into(&c, "#msg-filter", "$.status == \"paid\"").await;
        until_count(&c, "#messages tr.mrow", 13).await;
        screenshot(&c, "messages-filter.png").await;
        // The filter is in the URL: a reload keeps it.
        assert!(
            c.current_url().await.unwrap().as_str().contains("filter="),
            "{}",
            c.current_url().await.unwrap()
        );
        c.refresh().await.unwrap();
        view(&c, "stream").await;
        until_count(&c, "#messages tr.mrow", 13).await;
        type_into(&c, "#msg-filter", "open").await;
        until_count(&c, "#messages tr.mrow", 12).await;
        type_into(&c, "#msg-filter", "$.nothing").await;
        until_count(&c, "#messages tr.mrow", 0).await;
        step(
            &mut n,
            "filter by JSON path (13 paid, kept over a reload) and by text (12 open) (target/console/messages-filter.png)",
        );

        // 4. Copy an offset.
        type_into(&c, "#msg-filter", "").await;
        until_count(&c, "#messages tr.mrow", 25).await;
        click(&c, "#messages tr.mrow").await;
        click(&c, "#messages tr.detail button.copy-offset").await;
        let copied = until(Duration::from_secs(5), "the copy notice", || async {
            let t = text_of(&c, "#notice").await;
            (!t.is_empty()).then_some(t)
        })
        .await;
        assert_eq!(copied, "Copied the offset");
        step(&mut n, "copy a row's offset");

        // 5. Errors beside their form; the page-wide line stays empty.
        type_into(&c, "#append-body", "not json").await;
        click(&c, "#append-submit").await;
        let err = until(Duration::from_secs(5), "the append's error", || async {
            let t = text_of(&c, "#append-form > .form-error").await;
            (!t.is_empty()).then_some(t)
        })
        .await;
        assert!(err.starts_with("400"), "{err}");
        assert!(text_of(&c, "#error").await.is_empty(), "the error went to the top of the page");
        screenshot(&c, "append-error.png").await;
        step(
            &mut n,
            "an append's 400 shown inside its own form (target/console/append-error.png)",
        );

        // 6. Following keeps the metadata and the summary current; notices go on navigation.
        click(&c, "#live-toggle").await;
        conn_state(&c, "live").await;
        let url = format!("{api}/orders");
        let tail = blocking(move || {
            let r = http()
                .post(&url)
                .header("Content-Type", "application/json")
                .body(r#"{"id": 25}"#)
                .send()
                .unwrap();
            assert_eq!(r.status(), 204);
            r.headers()["stream-next-offset"].to_str().unwrap().to_string()
        })
        .await;
        until(Duration::from_secs(5), "the new tail in the metadata", || async {
            (text_of(&c, "#stream-meta dd[data-field=\"tail_offset\"]").await == tail).then_some(())
        })
        .await;
        assert!(
            text_of(&c, "#page-info").await.contains("26 messages"),
            "{}",
            text_of(&c, "#page-info").await
        );
        let fork_at = c.find(Locator::Css("#fork-offset")).await.unwrap().prop("value").await.unwrap();
        assert_eq!(fork_at.as_deref(), Some(tail.as_str()), "the fork form's offset follows the tail");
        click(&c, "#live-toggle").await;
        step(
            &mut n,
            "following: the tail offset, the message count and the fork offset follow an append",
        );

        // 7. The row cap, and jumping to an offset typed as a position.
        c.goto(&format!("{base}#/stream/big")).await.unwrap();
        view(&c, "stream").await;
        until_count(&c, "#messages tr.mrow", 200).await;
        click(&c, "#more-rows").await;
        until_count(&c, "#messages tr.mrow", 400).await;
        click(&c, "#more-rows").await;
        until_count(&c, "#messages tr.mrow", 450).await;
        assert!(!c.find(Locator::Css("#more-rows")).await.unwrap().is_displayed().await.unwrap());
        let offsets = attrs(&c, "#messages tr.mrow", "data-offset").await;
        let pos = offsets[300].rsplit('_').next().unwrap().trim_start_matches('0').to_string();
        type_into(&c, "#offset-input", &pos).await;
        click(&c, "#offset-go").await;
        until(Duration::from_secs(5), "the page from row 300", || async {
            let first = attrs(&c, "#messages tr.mrow", "data-offset").await;
            (first.first() == Some(&offsets[300]) && first.len() == 150).then_some(())
        })
        .await;
        step(&mut n, "450 values shown 200 at a time; a typed position opens the page at row 300");

        // 8. A text stream: one row per append (the engine keeps where each began).
        let url = format!("{api}/log");
        blocking(move || {
            let r = http()
                .post(&url)
                .header("Content-Type", "text/plain")
                .body("beta\ngamma\n")
                .send()
                .unwrap();
            assert_eq!(r.status(), 204);
        })
        .await;
        c.goto(&format!("{base}#/stream/log")).await.unwrap();
        view(&c, "stream").await;
        until_count(&c, "#messages tr.mrow", 2).await;
        let offsets = attrs(&c, "#messages tr.mrow", "data-offset").await;
        assert_eq!(offsets, ["0000000000000000_0000000000000000", "0000000000000000_0000000000000006"]);
        let previews = texts(&c, "#messages tr.mrow td.preview").await;
        assert_eq!(previews, ["alpha", "beta⏎gamma"]);
        step(
            &mut n,
            "a text stream: a row per append (offsets 0 and 6), a two-line append in one row",
        );

        // 9. Following a text stream: two appends without newlines are two rows; a notice from an
        // append goes when the page changes.
        click(&c, "#live-toggle").await;
        conn_state(&c, "live").await;
        for body in ["x", "y"] {
            let url = format!("{api}/log");
            blocking(move || {
                let r = http().post(&url).header("Content-Type", "text/plain").body(body).send().unwrap();
                assert_eq!(r.status(), 204);
            })
            .await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        until_count(&c, "#messages tr.mrow", 4).await;
        assert_eq!(texts(&c, "#messages tr.mrow td.preview").await[2..], ["x", "y"]);
        click(&c, "#live-toggle").await;
        type_into(&c, "#append-body", "delta").await;
        click(&c, "#append-submit").await;
        until_count(&c, "#messages tr.mrow", 5).await;
        assert_eq!(text_of(&c, "#notice").await, "Appended to log");
        c.goto(&format!("{base}#/server")).await.unwrap();
        view(&c, "server").await;
        assert!(!c.find(Locator::Css("#notice")).await.unwrap().is_displayed().await.unwrap());
        step(
            &mut n,
            "following a text stream: a row per append; a notice goes when the page changes",
        );

        // 10. The theme switch is remembered; the favicon is served.
        click(&c, "#theme-toggle").await;
        let theme = || async {
            c.execute("return document.documentElement.dataset.theme || 'auto'", vec![])
                .await
                .unwrap()
        };
        assert_eq!(theme().await, "light");
        click(&c, "#theme-toggle").await;
        assert_eq!(theme().await, "dark");
        c.refresh().await.unwrap();
        view(&c, "server").await;
        assert_eq!(theme().await, "dark", "the theme is remembered");
        screenshot(&c, "server-dark.png").await;
        click(&c, "#theme-toggle").await;
        assert_eq!(theme().await, "auto");
        let icon = c
            .find(Locator::Css("link[rel=\"icon\"]"))
            .await
            .unwrap()
            .prop("href")
            .await
            .unwrap()
            .unwrap();
        let (status, ct) = blocking(move || {
            let r = http().get(icon).send().unwrap();
            (r.status().as_u16(), r.headers()["content-type"].to_str().unwrap().to_string())
        })
        .await;
        assert_eq!((status, ct.as_str()), (200, "image/svg+xml"));
        step(
            &mut n,
            "the theme switch cycles and is remembered over a reload; the favicon is served",
        );
        c.close().await.unwrap();
    });
}

#[test]
fn a_scoped_token_and_a_cancelled_dialog() {
    let Some(driver) = start_driver() else { return };
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let admin = common::issue_token(&tokens, &["*:all"]);
    let reader = common::token_cli(&tokens, &["issue", "--scope", "chat/:read", "--label", "chat reader"]);
    let server = Server::start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap())]);
    let r = http()
        .put(server.url("/v1/stream/chat/s"))
        .bearer_auth(&admin)
        .header("Content-Type", "text/plain")
        .body("hello\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let base = server.url("/console/");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        let mut n = 0;
        // 1. Cancelling the token dialog leaves a usable page, not "Loading…".
        c.goto(&base).await.unwrap();
        c.wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css("#token-dialog[open]"))
            .await
            .unwrap();
        click(&c, "#token-cancel").await;
        c.wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css("#list-denied #enter-token"))
            .await
            .unwrap();
        let main = text_of(&c, "main").await;
        assert!(!main.contains("Loading"), "{main}");
        assert_eq!(text_of(&c, "#token-button").await, "No token");
        step(
            &mut n,
            "a cancelled token dialog leaves the page usable (enter a token, or open by name)",
        );

        // 2. A token without admin: the page says listing needs admin and opens by name.
        click(&c, "#enter-token").await;
        type_into(&c, "#token-input", &reader).await;
        click(&c, "#token-save").await;
        let denied = until(Duration::from_secs(5), "the admin notice", || async {
            let t = text_of(&c, "#list-denied").await;
            t.contains("admin").then_some(t)
        })
        .await;
        assert!(denied.contains("open"), "{denied}");
        assert_eq!(text_of(&c, "#token-button").await, "Token: chat reader");
        screenshot(&c, "scoped.png").await;
        type_into(&c, "#denied-open-name", "chat/s\n").await;
        view(&c, "stream").await;
        until_count(&c, "#messages tr.mrow", 1).await;
        step(
            &mut n,
            "a read-only token: listing needs admin, said so; chat/s opened by name (target/console/scoped.png)",
        );

        // 3. The header's box opens a stream from anywhere; the dialog shows who is signed in.
        c.goto(&format!("{base}#/server")).await.unwrap();
        view(&c, "server").await;
        type_into(&c, "#open-name", "chat/s\n").await;
        view(&c, "stream").await;
        until_count(&c, "#messages tr.mrow", 1).await;
        click(&c, "#token-button").await;
        let who = until(Duration::from_secs(5), "who is signed in", || async {
            let t = text_of(&c, "#token-who dd[data-field=\"scopes\"]").await;
            (!t.is_empty()).then_some(t)
        })
        .await;
        assert_eq!(who, "chat/:read");
        assert_eq!(text_of(&c, "#token-who dd[data-field=\"label\"]").await, "chat reader");
        click(&c, "#token-cancel").await;
        step(
            &mut n,
            "the header opens a stream by name; the token dialog shows its label and scopes",
        );

        // 4. What the token may not do is refused beside the form, and a missing stream it may
        // not create offers no create form.
        type_into(&c, "#append-body", "x").await;
        click(&c, "#append-submit").await;
        let err = until(Duration::from_secs(5), "the refusal", || async {
            let t = text_of(&c, "#append-form > .form-error").await;
            (!t.is_empty()).then_some(t)
        })
        .await;
        assert!(err.starts_with("403"), "{err}");
        c.goto(&format!("{base}#/stream/chat/none")).await.unwrap();
        c.wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css("#missing"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            c.find(Locator::Css("#create-form")).await.is_err(),
            "a create form for a token without create"
        );
        step(
            &mut n,
            "a 403 beside the append form; no create form for a token that may not create",
        );
        c.close().await.unwrap();
    });
}
