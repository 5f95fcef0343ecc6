//! The `ldap` source against a scripted LDAP server speaking just enough BER (bind, search,
//! unbind), for what a real slapd never does: a paged-results cookie that never advances, a
//! malformed paged-results control, and the exact number of page requests.

use std::sync::{Arc, Mutex};

use headcount::connectors::{ConnectorError, Source};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::slapd;

/// BER: a tag, a definite length, the contents.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn octets(s: &[u8]) -> Vec<u8> {
    tlv(0x04, s)
}

fn int(v: u8) -> Vec<u8> {
    tlv(0x02, &[v])
}

fn message(id: u8, op: Vec<u8>, controls: Option<Vec<u8>>) -> Vec<u8> {
    let mut body = int(id);
    body.extend(op);
    if let Some(c) = controls {
        body.extend(tlv(0xA0, &c));
    }
    tlv(0x30, &body)
}

/// An LDAPResult of `tag` with result code `rc`.
fn result(tag: u8, rc: u8) -> Vec<u8> {
    let mut c = tlv(0x0A, &[rc]);
    c.extend(octets(b""));
    c.extend(octets(b""));
    tlv(tag, &c)
}

fn entry(uid: &str) -> Vec<u8> {
    let dn = format!("uid={uid},ou=people,dc=example,dc=com");
    let mut attr = octets(b"uid");
    attr.extend(tlv(0x31, &octets(uid.as_bytes())));
    let mut c = octets(dn.as_bytes());
    c.extend(tlv(0x30, &tlv(0x30, &attr)));
    tlv(0x64, &c)
}

/// A paged-results response control whose value is `value` (normally SEQUENCE {size, cookie}).
fn paged_control(value: Vec<u8>) -> Vec<u8> {
    let mut c = octets(b"1.2.840.113556.1.4.319");
    c.extend(octets(&value));
    tlv(0x30, &c)
}

fn paged_value(cookie: &[u8]) -> Vec<u8> {
    let mut v = int(0);
    v.extend(octets(cookie));
    tlv(0x30, &v)
}

/// Reads one LDAPMessage: (message id, protocol op tag).
async fn read_message(sock: &mut TcpStream) -> Option<(u8, u8)> {
    let mut head = [0u8; 2];
    sock.read_exact(&mut head).await.ok()?;
    let len = if head[1] < 0x80 {
        head[1] as usize
    } else {
        let mut n = vec![0u8; (head[1] & 0x7f) as usize];
        sock.read_exact(&mut n).await.ok()?;
        n.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize)
    };
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).await.ok()?;
    // body: INTEGER id (short), then the op's tag.
    let id_len = body[1] as usize;
    let id = body[2 + id_len - 1];
    Some((id, body[2 + id_len]))
}

/// Serves one connection: each search answers page `n` with one entry and `pages[n]` as the
/// paged-results control value (`None`: no control). Counts the searches.
async fn serve(listener: TcpListener, pages: Vec<Option<Vec<u8>>>, searches: Arc<Mutex<usize>>) {
    let Ok((mut sock, _)) = listener.accept().await else {
        return;
    };
    while let Some((id, op)) = read_message(&mut sock).await {
        let reply = match op {
            0x60 => message(id, result(0x61, 0), None),
            0x63 => {
                let n = {
                    let mut s = searches.lock().unwrap();
                    *s += 1;
                    *s - 1
                };
                let mut out = message(id, entry(&format!("user{n}")), None);
                let control = pages.get(n).cloned().flatten().map(paged_control);
                out.extend(message(id, result(0x65, 0), control));
                out
            }
            _ => return, // unbind, or anything else: done
        };
        if sock.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn read_from(pages: Vec<Option<Vec<u8>>>) -> (Result<usize, ConnectorError>, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ldap://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let searches = Arc::new(Mutex::new(0));
    let server = tokio::spawn(serve(listener, pages, searches.clone()));
    let dir = tempfile::tempdir().unwrap();
    let source: Box<dyn Source> = slapd::build(
        json!({
            "url": url,
            "bind_dn": "cn=reader,dc=example,dc=com",
            "bind_password": slapd::password_file(dir.path(), "pw", "pw-1"),
            "base_dn": "ou=people,dc=example,dc=com",
            "page_size": 1,
        }),
        dir.path(),
    )
    .expect("build");
    let got = source.read().await.map(|r| r.len());
    drop(source);
    server.abort();
    let n = *searches.lock().unwrap();
    (got, n)
}

#[tokio::test]
async fn every_page_is_requested_exactly_once() {
    let (got, searches) = read_from(vec![
        Some(paged_value(b"c1")),
        Some(paged_value(b"c2")),
        Some(paged_value(b"")),
    ])
    .await;
    assert_eq!(got.expect("read"), 3);
    assert_eq!(searches, 3);
}

#[tokio::test]
async fn a_cookie_that_never_advances_is_an_error_not_a_loop() {
    let (got, searches) = read_from(vec![
        Some(paged_value(b"same")),
        Some(paged_value(b"same")),
        Some(paged_value(b"same")),
    ])
    .await;
    let err = got.expect_err("a paged search that never ends");
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::BadData(_)), "{err:?}");
    assert!(text.contains("contradicts itself"), "{text}");
    assert_eq!(searches, 2);
}

#[tokio::test]
async fn a_malformed_paged_results_control_is_bad_data_never_a_panic() {
    // The control's value is an OCTET STRING where a SEQUENCE belongs.
    let (got, searches) = read_from(vec![Some(octets(b"junk"))]).await;
    let err = got.expect_err("malformed control");
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::BadData(_)), "{err:?}");
    assert!(text.contains("could not be decoded"), "{text}");
    assert!(text.contains("page 1"), "{text}");
    assert_eq!(searches, 1);
}

#[tokio::test]
async fn a_server_that_ignores_paging_is_read_in_one_answer() {
    let (got, searches) = read_from(vec![None, None]).await;
    assert_eq!(got.expect("read"), 1);
    assert_eq!(searches, 1);
}

#[test]
fn a_url_without_a_server_is_refused_when_built() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["ldap://", "ldaps:///dc=example"] {
        let built = slapd::build(
            json!({"url": url, "base_dn": "dc=example,dc=com"}),
            dir.path(),
        );
        match built {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => {
                assert!(matches!(e, ConnectorError::Config(_)), "{e:?}");
                assert!(e.to_string().contains("names no LDAP server"), "{e}");
            }
        }
    }
}
