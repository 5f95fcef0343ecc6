//! A YAML node tree that keeps every node's position and scalar style, built straight from the
//! parser's events.
//!
//! serde gives typed values but forgets where they came from inside internally tagged enums
//! (`sources`, `targets`) and never says how a scalar was quoted. The loader and the validator
//! use this tree to point at the exact key or character an error is about. It is also the first,
//! budgeted pass over the text, so a syntax error is reported before any typed parsing.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{self, Event, Parser};

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

/// A position in the text: 1-based line, 1-based column counted in characters, byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: u32,
    pub col: u32,
    pub byte: usize,
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Scalar {
        value: String,
        style: Style,
        /// Explicit tag suffix (`str` for `!!str`), if any.
        tag: Option<String>,
    },
    Seq(Vec<NodeId>),
    /// Key and value node of each entry, in document order.
    Map(Vec<(NodeId, NodeId)>),
    /// An alias to the node defined with the given anchor id.
    Alias(usize),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub start: Mark,
    /// Exclusive end. For block collections this is where the next token starts.
    pub end: Mark,
}

/// One step of a path from the root: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Why the text could not be turned into a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    pub message: String,
    pub mark: Mark,
    pub budget: bool,
    /// Where an unclosed `[` or `{` was opened, when the error happened inside one: the parser
    /// notices only later, often lines away.
    pub open_flow: Option<(char, Mark)>,
}

/// Input budgets: the tree pass runs on untrusted text (a pull request can change the config).
#[derive(Debug, Clone, Copy)]
pub struct TreeLimits {
    pub max_nodes: usize,
    pub max_depth: usize,
    pub max_aliases: usize,
    /// Size of the document with every alias expanded (bytes of scalars plus one per node):
    /// a few aliases of a large anchor would otherwise make the typed pass copy it many times.
    pub max_expanded: u64,
}

impl Default for TreeLimits {
    fn default() -> Self {
        TreeLimits {
            max_nodes: 100_000,
            max_depth: 64,
            max_aliases: 1_000,
            max_expanded: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// The document's root node; `None` for an empty document.
    pub root: Option<NodeId>,
    anchors: HashMap<usize, NodeId>,
    /// Expanded size of each node (see [`TreeLimits::max_expanded`]).
    weight: Vec<u64>,
}

enum Open {
    Seq {
        start: Mark,
        anchor: usize,
        items: Vec<NodeId>,
    },
    Map {
        start: Mark,
        anchor: usize,
        entries: Vec<(NodeId, NodeId)>,
        key: Option<NodeId>,
    },
}

fn mark_of(m: &granit_parser::Marker, text: &str) -> Mark {
    let byte = m.byte_offset().unwrap_or_else(|| {
        text.char_indices()
            .nth(m.index())
            .map_or(text.len(), |(b, _)| b)
    });
    Mark {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col()).unwrap_or(u32::MAX).saturating_add(1),
        byte,
    }
}

impl Tree {
    /// Parses one YAML document. More than one document, a syntax error or a blown budget is an
    /// error with the position where it happened.
    pub fn parse(text: &str, limits: TreeLimits) -> Result<Tree, TreeError> {
        let mut options = granit_parser::Options::default();
        options.set_emit_comments(false);
        options.block_nesting_limit = limits.max_depth.saturating_add(1);
        options.flow_nesting_limit = limits.max_depth;
        let mut parser = Parser::new_from_str_with_options(text, options);

        let mut tree = Tree::default();
        let mut stack: Vec<Open> = Vec::new();
        let mut documents = 0usize;
        let mut aliases = 0usize;
        // Flow collections currently open, innermost last.
        let mut flows: Vec<Option<(char, Mark)>> = Vec::new();

        while let Some(next) = parser.next_event() {
            let (event, span) = match next {
                Ok(ev) => ev,
                Err(e) => {
                    let info = e.info();
                    let budget = info.contains("nesting") || info.contains("recursion");
                    return Err(TreeError {
                        message: info,
                        mark: mark_of(e.marker(), text),
                        budget,
                        open_flow: flows.iter().rev().flatten().next().copied(),
                    });
                }
            };
            let start = mark_of(&span.start, text);
            let end = mark_of(&span.end, text);
            let completed: Option<(Node, usize)> = match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(TreeError {
                            message: "the config file holds more than one YAML document (a second `---`); keep one".to_string(),
                            mark: start,
                            budget: false,
                            open_flow: None,
                        });
                    }
                    None
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let style = match style {
                        granit_parser::ScalarStyle::Plain => Style::Plain,
                        granit_parser::ScalarStyle::SingleQuoted => Style::SingleQuoted,
                        granit_parser::ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                        granit_parser::ScalarStyle::Literal => Style::Literal,
                        granit_parser::ScalarStyle::Folded => Style::Folded,
                    };
                    Some((
                        Node {
                            kind: NodeKind::Scalar {
                                value: value.into_owned(),
                                style,
                                tag: tag.map(|t| t.suffix().to_string()),
                            },
                            start,
                            end,
                        },
                        anchor,
                    ))
                }
                Event::Alias(id) => {
                    aliases += 1;
                    if aliases > limits.max_aliases {
                        return Err(TreeError {
                            message: format!(
                                "the config uses more than {} aliases (`*name`)",
                                limits.max_aliases
                            ),
                            mark: start,
                            budget: true,
                            open_flow: None,
                        });
                    }
                    Some((
                        Node {
                            kind: NodeKind::Alias(id),
                            start,
                            end,
                        },
                        0,
                    ))
                }
                Event::SequenceStart(style, anchor, _) | Event::MappingStart(style, anchor, _) => {
                    let is_seq = matches!(event, Event::SequenceStart(..));
                    flows.push(
                        (style == granit_parser::StructureStyle::Flow)
                            .then_some((if is_seq { '[' } else { '{' }, start)),
                    );
                    if stack.len() >= limits.max_depth {
                        return Err(TreeError {
                            message: format!(
                                "the config nests deeper than {} levels",
                                limits.max_depth
                            ),
                            mark: start,
                            budget: true,
                            open_flow: None,
                        });
                    }
                    if is_seq {
                        stack.push(Open::Seq {
                            start,
                            anchor,
                            items: Vec::new(),
                        });
                    } else {
                        stack.push(Open::Map {
                            start,
                            anchor,
                            entries: Vec::new(),
                            key: None,
                        });
                    }
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => match (flows.pop(), stack.pop()).1 {
                    Some(Open::Seq {
                        start,
                        anchor,
                        items,
                    }) => Some((
                        Node {
                            kind: NodeKind::Seq(items),
                            start,
                            end,
                        },
                        anchor,
                    )),
                    Some(Open::Map {
                        start,
                        anchor,
                        entries,
                        ..
                    }) => Some((
                        Node {
                            kind: NodeKind::Map(entries),
                            start,
                            end,
                        },
                        anchor,
                    )),
                    None => None,
                },
                _ => None,
            };
            let Some((node, anchor)) = completed else {
                continue;
            };
            if tree.nodes.len() >= limits.max_nodes {
                return Err(TreeError {
                    message: format!("the config has more than {} YAML nodes", limits.max_nodes),
                    mark: node.start,
                    budget: true,
                    open_flow: None,
                });
            }
            let weight = match &node.kind {
                NodeKind::Scalar { value, .. } => 1 + value.len() as u64,
                NodeKind::Alias(a) => tree.anchors.get(a).map_or(1, |target| tree.weight[*target]),
                NodeKind::Seq(items) => items
                    .iter()
                    .fold(1u64, |w, i| w.saturating_add(tree.weight[*i])),
                NodeKind::Map(entries) => entries.iter().fold(1u64, |w, (k, v)| {
                    w.saturating_add(tree.weight[*k])
                        .saturating_add(tree.weight[*v])
                }),
            };
            if weight > limits.max_expanded {
                return Err(TreeError {
                    message: format!(
                        "the config expands to more than {} MiB once its aliases (`*name`) are replaced",
                        limits.max_expanded / (1024 * 1024)
                    ),
                    mark: node.start,
                    budget: true,
                    open_flow: None,
                });
            }
            let id = tree.nodes.len();
            tree.nodes.push(node);
            tree.weight.push(weight);
            if anchor != 0 {
                tree.anchors.insert(anchor, id);
            }
            match stack.last_mut() {
                Some(Open::Seq { items, .. }) => items.push(id),
                Some(Open::Map { entries, key, .. }) => match key.take() {
                    Some(k) => entries.push((k, id)),
                    None => *key = Some(id),
                },
                None => tree.root = Some(id),
            }
        }
        Ok(tree)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Follows aliases to the node they stand for.
    pub fn resolve(&self, mut id: NodeId) -> NodeId {
        for _ in 0..64 {
            match self.nodes[id].kind {
                NodeKind::Alias(a) => match self.anchors.get(&a) {
                    Some(&target) => id = target,
                    None => return id,
                },
                _ => return id,
            }
        }
        id
    }

    /// The scalar text of a node, if it is a scalar.
    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The entries of a mapping node (empty for anything else).
    pub fn entries(&self, id: NodeId) -> &[(NodeId, NodeId)] {
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The key node and value node of `key` in the mapping `map`.
    pub fn entry(&self, map: NodeId, key: &str) -> Option<(NodeId, NodeId)> {
        self.entries(map)
            .iter()
            .find(|(k, _)| self.scalar(*k) == Some(key))
            .copied()
    }

    /// The node at `path` from the root (the value node for a key).
    pub fn at(&self, path: &[Seg]) -> Option<NodeId> {
        let mut cur = self.root?;
        for seg in path {
            cur = match seg {
                Seg::Key(k) => self.entry(cur, k)?.1,
                Seg::Index(i) => match &self.nodes[self.resolve(cur)].kind {
                    NodeKind::Seq(items) => *items.get(*i)?,
                    _ => return None,
                },
            };
        }
        Some(cur)
    }

    /// The key node for the last segment of `path` when it is a key, else the node itself.
    pub fn key_at(&self, path: &[Seg]) -> Option<NodeId> {
        match path.split_last() {
            Some((Seg::Key(k), parent)) => Some(self.entry(self.at(parent)?, k)?.0),
            _ => self.at(path),
        }
    }

    /// The path to the innermost node that starts at, or contains, `line:col`. When the position
    /// is a mapping key, the path ends with that key.
    pub fn locate(&self, line: u32, col: u32) -> Vec<Seg> {
        let mut path = Vec::new();
        let Some(mut cur) = self.root else {
            return path;
        };
        let at = (line, col);
        'outer: for _ in 0..256 {
            match &self.nodes[cur].kind {
                NodeKind::Map(entries) => {
                    for (k, v) in entries {
                        let key = self.scalar(*k).unwrap_or_default().to_string();
                        if self.starts_at(*k, at) {
                            path.push(Seg::Key(key));
                            return path;
                        }
                        if self.contains(*v, at) {
                            path.push(Seg::Key(key));
                            cur = *v;
                            continue 'outer;
                        }
                    }
                    return path;
                }
                NodeKind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if self.contains(*item, at) {
                            path.push(Seg::Index(i));
                            cur = *item;
                            continue 'outer;
                        }
                    }
                    return path;
                }
                _ => return path,
            }
        }
        path
    }

    fn starts_at(&self, id: NodeId, at: (u32, u32)) -> bool {
        let n = &self.nodes[id];
        (n.start.line, n.start.col) == at
    }

    fn contains(&self, id: NodeId, at: (u32, u32)) -> bool {
        let n = &self.nodes[id];
        let start = (n.start.line, n.start.col);
        let end = (n.end.line, n.end.col);
        start <= at && (at < end || start == at)
    }

    /// The scalar node that starts at `line:col` (where serde-saphyr puts a value's location).
    pub fn scalar_starting_at(&self, line: u32, col: u32) -> Option<NodeId> {
        self.nodes.iter().position(|n| {
            matches!(n.kind, NodeKind::Scalar { .. }) && n.start.line == line && n.start.col == col
        })
    }

    /// Converts a node to JSON the way serde-saphyr would hand it to a buffering visitor, for
    /// re-running serde on part of the document. Counts nodes in document order: only the first
    /// `*remaining` nodes are kept (a key whose value is cut gets `null`), and `visited` receives
    /// the id of each node kept. Returns `None` when the node itself is cut.
    pub fn to_json(
        &self,
        id: NodeId,
        remaining: &mut usize,
        visited: &mut Vec<NodeId>,
        depth: usize,
    ) -> Option<serde_json::Value> {
        use serde_json::Value;
        if *remaining == 0 || depth > 64 {
            return None;
        }
        *remaining -= 1;
        visited.push(id);
        let id = self.resolve(id);
        match &self.nodes[id].kind {
            NodeKind::Scalar { value, style, tag } => Some(scalar_json(value, *style, tag)),
            NodeKind::Alias(_) => Some(Value::Null),
            NodeKind::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    match self.to_json(*item, remaining, visited, depth + 1) {
                        Some(v) => out.push(v),
                        None => break,
                    }
                }
                Some(Value::Array(out))
            }
            NodeKind::Map(entries) => {
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    if *remaining == 0 {
                        break;
                    }
                    *remaining -= 1;
                    visited.push(*k);
                    let key = self.scalar(*k).unwrap_or_default().to_string();
                    let value = self
                        .to_json(*v, remaining, visited, depth + 1)
                        .unwrap_or(Value::Null);
                    out.insert(key, value);
                }
                Some(Value::Object(out))
            }
        }
    }
}

/// Types a scalar like serde-saphyr's untyped path: quoted and block scalars are strings; plain
/// ones are re-read by serde-saphyr itself so that `3`, `true`, `~` get the same types.
fn scalar_json(value: &str, style: Style, tag: &Option<String>) -> serde_json::Value {
    use serde_json::Value;
    if style != Style::Plain || tag.as_deref() == Some("str") {
        return Value::String(value.to_string());
    }
    let typed = (value.len() < 128 && !value.contains('\n'))
        .then(|| serde_saphyr::from_str::<Value>(value).ok())
        .flatten()
        .filter(|v| {
            matches!(
                v,
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
            )
        });
    match typed {
        Some(v) => v,
        None => Value::String(value.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Tree {
        Tree::parse(text, TreeLimits::default()).unwrap()
    }

    #[test]
    fn keeps_positions_and_styles() {
        let t = tree("a:\n  b: 'x''y'\n  c: [1, 2]\nd: |\n  l1\n");
        let b = t.at(&[Seg::Key("a".into()), Seg::Key("b".into())]).unwrap();
        let n = t.node(b);
        assert_eq!((n.start.line, n.start.col), (2, 6));
        assert!(
            matches!(&n.kind, NodeKind::Scalar { value, style: Style::SingleQuoted, .. } if value == "x'y")
        );
        let c1 = t
            .at(&[Seg::Key("a".into()), Seg::Key("c".into()), Seg::Index(1)])
            .unwrap();
        assert_eq!(t.scalar(c1), Some("2"));
        let d = t.at(&[Seg::Key("d".into())]).unwrap();
        assert_eq!(t.node(d).start.line, 5);
        assert_eq!(
            t.locate(3, 3),
            vec![Seg::Key("a".into()), Seg::Key("c".into())]
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Tree::parse("a: [1, 2\n", TreeLimits::default()).unwrap_err();
        assert_eq!(err.mark.line, 1);
        assert!(err.message.contains("bracket"), "{}", err.message);
        let err = Tree::parse("a: [1, 2\nb: c\n", TreeLimits::default()).unwrap_err();
        assert_eq!(
            err.open_flow.map(|(c, m)| (c, m.line, m.col)),
            Some(('[', 1, 4))
        );
        let err = Tree::parse("a: 1\n---\nb: 2\n", TreeLimits::default()).unwrap_err();
        assert!(err.message.contains("more than one YAML document"));
    }

    #[test]
    fn budgets_stop_deep_and_wide_input() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Tree::parse(&deep, TreeLimits::default()).is_err());
        let limits = TreeLimits {
            max_nodes: 10,
            ..TreeLimits::default()
        };
        assert!(
            Tree::parse("[1,2,3,4,5,6,7,8,9,10,11,12]", limits)
                .unwrap_err()
                .budget
        );
    }

    #[test]
    fn json_prefixes_follow_document_order() {
        let t = tree("kind: csv\npath: 3\nx: [a, 'b']\n");
        let root = t.root.unwrap();
        let mut visited = Vec::new();
        let mut all = usize::MAX;
        let full = t.to_json(root, &mut all, &mut visited, 0).unwrap();
        assert_eq!(
            full,
            serde_json::json!({"kind": "csv", "path": 3, "x": ["a", "b"]})
        );
        let mut remaining = 4;
        let part = t.to_json(root, &mut remaining, &mut Vec::new(), 0).unwrap();
        assert_eq!(part, serde_json::json!({"kind": "csv", "path": null}));
    }
}
