//! The token file's unit tests: issue, check, revoke, chains of issuers (revocation, root,
//! JWT key, bound), records this version cannot read.

use super::*;

fn req(scopes: &[String], ttl_ms: Option<u64>) -> Issue<'_> {
    Issue {
        scopes,
        ttl_ms,
        label: "t",
        issued_by: None,
        issued_by_jwt: None,
        bound: None,
    }
}

#[test]
fn a_token_issued_by_a_revoked_token_is_refused() {
    let dir = std::env::temp_dir().join(format!("ds-tokens-chain-{}", std::process::id()));
    let path = dir.join("tokens.json");
    let scopes = ["chat/:read,admin".to_string()];
    let (parent, p) = issue(&path, &req(&scopes, None)).unwrap();
    let (child, c) = issue(
        &path,
        &Issue {
            issued_by: Some(&p.id),
            ..req(&scopes, None)
        },
    )
    .unwrap();
    // A chain far deeper than anyone would build by hand.
    let (mut deepest, mut last) = issue(
        &path,
        &Issue {
            issued_by: Some(&c.id),
            ..req(&scopes, None)
        },
    )
    .unwrap();
    let grandchild = deepest.clone();
    for _ in 0..60 {
        let (t, r) = issue(
            &path,
            &Issue {
                issued_by: Some(&last.id),
                ..req(&scopes, None)
            },
        )
        .unwrap();
        (deepest, last) = (t, r);
    }
    let table = TokenTable::open(path.clone()).unwrap();
    assert!(table.check(&grandchild).is_ok());
    assert!(table.check(&deepest).is_ok());
    revoke(&path, &p.id).unwrap();
    table.file.look_next_time();
    assert!(matches!(table.check(&parent), Err(TokenError::Revoked(_))));
    assert!(matches!(table.check(&child), Err(TokenError::Revoked(_))));
    assert!(matches!(table.check(&grandchild), Err(TokenError::Revoked(_))));
    assert!(matches!(table.check(&deepest), Err(TokenError::Revoked(_))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_chain_shares_its_roots_name_key_and_bound() {
    let dir = std::env::temp_dir().join(format!("ds-tokens-roots-{}", std::process::id()));
    let path = dir.join("tokens.json");
    let scopes = ["chat/:read,admin".to_string()];
    let jwt = JwtIssuer {
        sub: "alice".into(),
        kid: Some("k1".into()),
        key: "abc".into(),
    };
    let bound = Some(Bound { root: "jwt:alice", max: 2 });
    let (child, c) = issue(
        &path,
        &Issue {
            issued_by_jwt: Some(&jwt),
            bound,
            ..req(&scopes, None)
        },
    )
    .unwrap();
    let (grandchild, _) = issue(
        &path,
        &Issue {
            issued_by: Some(&c.id),
            bound,
            ..req(&scopes, None)
        },
    )
    .unwrap();
    // A third under the same root is over the bound; a token of another root is not.
    let third = issue(
        &path,
        &Issue {
            issued_by: Some(&c.id),
            bound,
            ..req(&scopes, None)
        },
    );
    assert!(matches!(third, Err(FileError::TooMany { max: 2 })));
    let (other, o) = issue(&path, &req(&scopes, None)).unwrap();
    let table = TokenTable::open(path.clone()).unwrap();
    for t in [&child, &grandchild] {
        let g = table.check(t).unwrap();
        assert_eq!(&*g.root, "jwt:alice");
        assert_eq!(g.key.as_deref(), Some(&jwt));
    }
    let g = table.check(&other).unwrap();
    assert_eq!((&*g.root, g.key.is_none()), (o.id.as_str(), true));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_with_a_bad_scope_grants_nothing_and_spoils_no_other() {
    let dir = std::env::temp_dir().join(format!("ds-tokens-badscope-{}", std::process::id()));
    let path = dir.join("tokens.json");
    let (good, _) = issue(&path, &req(&["chat/:read".into()], None)).unwrap();
    let (bad, b) = issue(&path, &req(&["room/:read".into()], None)).unwrap();
    // As an older version might have written it.
    let mut file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for t in file["tokens"].as_array_mut().unwrap() {
        if t["id"] == b.id.as_str() {
            t["scopes"] = serde_json::json!(["room**:read"]);
        }
    }
    std::fs::write(&path, file.to_string()).unwrap();
    let table = TokenTable::open(path.clone()).unwrap();
    assert!(table.check(&good).is_ok());
    assert_eq!(table.check(&bad).unwrap_err(), TokenError::Unknown);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn issue_check_revoke() {
    let dir = std::env::temp_dir().join(format!("ds-tokens-{}", std::process::id()));
    let path = dir.join("tokens.json");
    let (token, rec) = issue(&path, &req(&["chat/:read".into()], None)).unwrap();
    assert!(token.starts_with("dst_") && token.len() == 4 + 12 + 1 + 64);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&token[17..]), "the secret is never stored");
    let table = TokenTable::open(path.clone()).unwrap();
    let g = table.check(&token).unwrap();
    assert_eq!(&*g.id, rec.id.as_str());
    let mut wrong = token.clone();
    wrong.pop();
    wrong.push(if token.ends_with('0') { '1' } else { '0' });
    assert_eq!(table.check(&wrong).unwrap_err(), TokenError::Unknown);
    assert_eq!(table.check("dst_nope").unwrap_err(), TokenError::Malformed);
    revoke(&path, &rec.id).unwrap();
    // Seen once the table rechecks the file.
    table.file.look_next_time();
    assert_eq!(table.check(&token).unwrap_err(), TokenError::Revoked(rec.id.clone()));
    let (short, _) = issue(&path, &req(&["*:read".into()], Some(0))).unwrap();
    table.file.look_next_time();
    assert!(matches!(table.check(&short), Err(TokenError::Expired(_))));
    assert!(matches!(issue(&path, &req(&["x".into()], None)), Err(FileError::Scope(_))));
    let _ = std::fs::remove_dir_all(&dir);
}
