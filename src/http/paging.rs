//! Paging: one loop ([`HttpClient::collect_pages`]) where the connector turns each answer into
//! items and the next request, plus helpers for the three styles vendors use: index-based
//! (`startIndex`/`count`, SCIM), page numbers (`page`/`per_page`, Mojo, RT) and next-links or
//! cursors (Zendesk `links.next`, Graph `@odata.nextLink`, Google `pageToken`).

use super::{HttpClient, HttpError, Request, Response};

/// Pages followed before giving up: a server that never stops paging is a bug, not a directory.
pub const MAX_PAGES: usize = 100_000;

/// One page: its items and the request for the next page (`None` on the last one).
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Request>,
}

impl HttpClient {
    /// Sends `first`, then every next request `step` derives from the previous answer, and
    /// returns all items in order. Stops on `next: None`; fails when a next request repeats the
    /// previous one (a server ignoring the paging parameters would loop forever).
    pub async fn collect_pages<T, F>(
        &self,
        first: Request,
        mut step: F,
    ) -> Result<Vec<T>, HttpError>
    where
        F: FnMut(&Request, Response) -> Result<Page<T>, HttpError>,
    {
        let mut items = Vec::new();
        let mut req = first;
        for _ in 0..MAX_PAGES {
            let resp = self.send(req.clone()).await?;
            let what = resp.what.clone();
            let page = step(&req, resp)?;
            items.extend(page.items);
            match page.next {
                None => return Ok(items),
                Some(next) => {
                    if next.path == req.path && next.query == req.query {
                        return Err(HttpError::Decode {
                            what,
                            cause: "the next page is the same request as this one: the server ignores the paging parameters".to_string(),
                        });
                    }
                    req = next;
                }
            }
        }
        Err(HttpError::Decode {
            what: format!("{} {}", req.method, req.path),
            cause: format!("more than {MAX_PAGES} pages: stopped"),
        })
    }
}

/// Index-based paging (SCIM): the next request starts after the items seen so far. Stops on an
/// empty page or when `total` is reached. `got` is this page's size (the server may return
/// fewer than asked, so the step follows what came, not what was asked).
pub fn next_by_index(
    req: &Request,
    start_param: &str,
    start: u64,
    got: usize,
    seen: u64,
    total: Option<u64>,
) -> Option<Request> {
    if got == 0 || total.is_some_and(|t| seen >= t) {
        return None;
    }
    Some(req.clone().query(start_param, start + got as u64))
}

/// Page-number paging (Mojo, RT): the next page while this one was full. `page` is the number
/// of the page just read.
pub fn next_by_page_number(
    req: &Request,
    page_param: &str,
    page: u64,
    got: usize,
    per_page: usize,
) -> Option<Request> {
    (got > 0 && got >= per_page).then(|| req.clone().query(page_param, page + 1))
}

/// Next-link paging (Zendesk, Graph): follow the absolute or relative URL the server gave, if
/// any. The query of the link replaces the request's (the link holds the cursor).
pub fn next_by_link(req: &Request, link: Option<&str>) -> Option<Request> {
    let link = link.map(str::trim).filter(|l| !l.is_empty())?;
    let mut next = req.clone();
    next.path = link.to_string();
    next.query.clear();
    Some(next)
}

/// Cursor paging (Google `pageToken`): the same request with the cursor parameter set.
pub fn next_by_cursor(req: &Request, cursor_param: &str, cursor: Option<&str>) -> Option<Request> {
    let cursor = cursor.filter(|c| !c.is_empty())?;
    Some(req.clone().query(cursor_param, cursor))
}
