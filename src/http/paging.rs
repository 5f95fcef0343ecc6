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
    /// returns all items in order. Stops on `next: None`. A list that contradicts itself is an
    /// [`HttpError::Inconsistent`] naming this client's connector, never a short list: a next
    /// request that repeats the previous one, or a page holding exactly the previous page's
    /// items (a server ignoring the paging parameters), would otherwise loop or read as fewer
    /// accounts than there are, and the planner would create the ones it did not see.
    pub async fn collect_pages<T, F>(
        &self,
        first: Request,
        mut step: F,
    ) -> Result<Vec<T>, HttpError>
    where
        T: PartialEq,
        F: FnMut(&Request, Response) -> Result<Page<T>, HttpError>,
    {
        let mut items: Vec<T> = Vec::new();
        let mut last_len = 0;
        let mut req = first;
        for number in 1..=MAX_PAGES {
            let resp = self.send(req.clone()).await?;
            let what = resp.what.clone();
            let page = step(&req, resp)?;
            let previous = &items[items.len() - last_len..];
            if number > 1 && !page.items.is_empty() && page.items == previous {
                return Err(self.inconsistent(
                    what,
                    format!(
                        "page {number} holds the same {} item(s) as page {}: the server ignores the paging parameters",
                        page.items.len(),
                        number - 1
                    ),
                ));
            }
            last_len = page.items.len();
            items.extend(page.items);
            match page.next {
                None => return Ok(items),
                Some(next) => {
                    if next.path == req.path && next.query == req.query {
                        return Err(self.inconsistent(
                            what,
                            "the next page is the same request as this one: the server ignores the paging parameters".to_string(),
                        ));
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

impl HttpClient {
    /// A list that contradicts itself, named after this client's connector.
    pub fn inconsistent(&self, what: String, cause: String) -> HttpError {
        HttpError::Inconsistent {
            who: self.inner.name.clone(),
            what,
            cause,
        }
    }
}

/// Index-based paging (SCIM): the next request starts after the items seen so far. Stops when
/// `total` is reached, or on an empty page when the server gives no total. An empty page
/// before the announced total is an error (the `cause` of an [`HttpError::Inconsistent`]):
/// `totalResults: 1000000000000` with no users is a broken server, not an empty directory.
/// `got` is this page's size (the server may return fewer than asked, so the step follows what
/// came, not what was asked).
pub fn next_by_index(
    req: &Request,
    start_param: &str,
    start: u64,
    got: usize,
    seen: u64,
    total: Option<u64>,
) -> Result<Option<Request>, String> {
    match total {
        Some(t) if seen >= t => return Ok(None),
        Some(t) if got == 0 => {
            return Err(format!(
                "the list ended after {seen} item(s), but the server announced {t} in total"
            ));
        }
        None if got == 0 => return Ok(None),
        _ => {}
    }
    Ok(Some(req.clone().query(start_param, start + got as u64)))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_index_list_ending_before_its_total_is_an_error() {
        let req = Request::get("Users");
        let err = next_by_index(&req, "startIndex", 1, 0, 0, Some(1_000_000_000_000)).unwrap_err();
        assert!(err.contains("after 0 item(s)"), "{err}");
        assert!(err.contains("1000000000000"), "{err}");
        assert!(
            next_by_index(&req, "startIndex", 1, 0, 0, Some(0))
                .unwrap()
                .is_none()
        );
        assert!(
            next_by_index(&req, "startIndex", 1, 0, 0, None)
                .unwrap()
                .is_none()
        );
        assert!(
            next_by_index(&req, "startIndex", 1, 2, 2, Some(2))
                .unwrap()
                .is_none()
        );
        let next = next_by_index(&req, "startIndex", 1, 2, 2, Some(5))
            .unwrap()
            .unwrap();
        assert_eq!(next.query, [("startIndex".to_string(), "3".to_string())]);
    }
}
