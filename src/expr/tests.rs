#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::library::{FUNCTIONS, Style};
use super::*;

fn sample_user() -> Value {
    json!({
        "primaryEmail": "  Ada.Lovelace@Example.COM ",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "fullName": "Ada Lovelace"},
        "first": "Ada",
        "orgUnitPath": "/Support/Tier1",
        "groups": ["support@example.com", "admins@example.com"],
        "isAdmin": true,
        "suspended": false,
        "archived": false,
        "nickname": null,
        "age": 36,
        "height": 1.68,
        "big": 18446744073709551615u64,
        "title": "ÉVA Straße",
        "emails": [
            {"address": "ada@example.com", "primary": true},
            {"address": "ada@old.example.com", "primary": false}
        ],
        "tags": {"team": "blue"},
        "empty": ""
    })
}

enum Want {
    Is(Value),
    Fails(&'static str),
}
use Want::{Fails, Is};

fn eval(expr: &str, user: &Value) -> Result<Value, EvalError> {
    Expr::compile(expr)
        .unwrap_or_else(|e| panic!("{expr}: does not compile: {e} at {:?}", e.offset))
        .eval(user, "workspace")
}

#[test]
fn evaluates_the_documented_functions() {
    let user = sample_user();
    let cases: Vec<(&str, Want)> = vec![
        // variables, access, literals
        ("source", Is(json!("workspace"))),
        ("user.first", Is(json!("Ada"))),
        ("user.name.givenName", Is(json!("Ada"))),
        ("user[\"first\"]", Is(json!("Ada"))),
        ("user.tags[\"team\"]", Is(json!("blue"))),
        ("user.groups[1]", Is(json!("admins@example.com"))),
        ("user.emails[0].address", Is(json!("ada@example.com"))),
        ("user.nickname", Is(Value::Null)),
        ("null", Is(Value::Null)),
        ("user.tags", Is(json!({"team": "blue"}))),
        (
            "{\"b\": 1, \"a\": [true, null]}",
            Is(json!({"a": [true, null], "b": 1})),
        ),
        // numbers keep their kind
        ("user.age", Is(json!(36))),
        ("user.age + 1", Is(json!(37))),
        ("user.height", Is(json!(1.68))),
        ("user.height * 2.0", Is(json!(3.36))),
        ("user.big", Is(json!(18446744073709551615u64))),
        ("user.age == 36.0", Is(json!(true))),
        ("type(user.age) == int", Is(json!(true))),
        ("type(user.height) == double", Is(json!(true))),
        ("type(user.first)", Is(json!("string"))),
        ("double(user.age) / 8.0", Is(json!(4.5))),
        ("int(\"42\")", Is(json!(42))),
        ("string(user.age)", Is(json!("36"))),
        ("1u", Is(json!(1))),
        // string functions
        (
            "user.primaryEmail.lower()",
            Is(json!("  ada.lovelace@example.com ")),
        ),
        (
            "user.primaryEmail.trim().lower()",
            Is(json!("ada.lovelace@example.com")),
        ),
        (
            "lower(trim(user.primaryEmail))",
            Is(json!("ada.lovelace@example.com")),
        ),
        ("user.first.upper()", Is(json!("ADA"))),
        ("upper(user.first)", Is(json!("ADA"))),
        ("user.title.lower()", Is(json!("éva straße"))),
        ("user.title.upper()", Is(json!("ÉVA STRASSE"))),
        ("user.title.lowerAscii()", Is(json!("Éva straße"))),
        ("user.name.fullName.trim()", Is(json!("Ada Lovelace"))),
        ("trim(\"\\t x \\n\")", Is(json!("x"))),
        (
            "user.orgUnitPath.split(\"/\")",
            Is(json!(["", "Support", "Tier1"])),
        ),
        ("user.orgUnitPath.split(\"/\")[1]", Is(json!("Support"))),
        (
            "user.orgUnitPath.split(\"/\", 2)",
            Is(json!(["", "Support/Tier1"])),
        ),
        (
            "user.groups.join(\", \")",
            Is(json!("support@example.com, admins@example.com")),
        ),
        ("[\"a\", \"b\"].join()", Is(json!("ab"))),
        ("user.first.replace(\"a\", \"4\")", Is(json!("Ad4"))),
        ("\"aaa\".replace(\"a\", \"b\", 2)", Is(json!("bba"))),
        ("user.first.contains(\"d\")", Is(json!(true))),
        ("user.orgUnitPath.startsWith(\"/Support\")", Is(json!(true))),
        ("user.orgUnitPath.endsWith(\"Tier2\")", Is(json!(false))),
        ("user.first.matches(\"^A.a$\")", Is(json!(true))),
        ("matches(user.first, \"^b\")", Is(json!(false))),
        ("user.first.matches(user.first)", Is(json!(true))),
        ("size(user.first)", Is(json!(3))),
        ("user.title.size()", Is(json!(10))),
        ("size(user.groups)", Is(json!(2))),
        ("size(user.tags)", Is(json!(1))),
        (
            "user.first + \" \" + user.name.familyName",
            Is(json!("Ada Lovelace")),
        ),
        ("user.email.substring(0, 3)", Fails("user.email is not set")),
        ("user.first.substring(1)", Is(json!("da"))),
        ("user.first.indexOf(\"a\")", Is(json!(2))),
        (
            "\"%s <%s>\".format([user.first, source])",
            Is(json!("Ada <workspace>")),
        ),
        ("user.first.reverse()", Is(json!("adA"))),
        // has, ternary, in, macros
        ("has(user.nickname)", Is(json!(true))),
        ("has(user.missing)", Is(json!(false))),
        ("has(user.name.givenName)", Is(json!(true))),
        ("has(user.name.middleName)", Is(json!(false))),
        (
            "user.isAdmin ? \"technician\" : \"user\"",
            Is(json!("technician")),
        ),
        (
            "!user.archived && user.orgUnitPath.startsWith(\"/Support\")",
            Is(json!(true)),
        ),
        ("user.suspended || size(user.groups) > 1", Is(json!(true))),
        ("\"admins@example.com\" in user.groups", Is(json!(true))),
        ("\"team\" in user.tags", Is(json!(true))),
        ("\"first\" in user", Is(json!(true))),
        (
            "user.groups.exists(g, g.startsWith(\"admins@\"))",
            Is(json!(true)),
        ),
        (
            "user.groups.all(g, g.endsWith(\"@example.com\"))",
            Is(json!(true)),
        ),
        (
            "user.groups.exists_one(g, g.contains(\"support\"))",
            Is(json!(true)),
        ),
        (
            "user.emails.filter(e, e.primary).map(e, e.address)",
            Is(json!(["ada@example.com"])),
        ),
        (
            "user.groups.map(g, g.split(\"@\")[0])",
            Is(json!(["support", "admins"])),
        ),
        ("size(user) > 3", Is(json!(true))),
        // optional syntax
        ("user.?nickname.orValue(user.first)", Is(Value::Null)),
        ("user.?nick.orValue(user.first)", Is(json!("Ada"))),
        ("user.?name.?middleName.orValue(\"-\")", Is(json!("-"))),
        ("user.?name.?givenName.orValue(\"-\")", Is(json!("Ada"))),
        ("user[?\"first\"].orValue(\"x\")", Is(json!("Ada"))),
        ("user[?\"nope\"].orValue(\"x\")", Is(json!("x"))),
        (
            "user.tags[?\"colour\"].orValue(\"none\")",
            Is(json!("none")),
        ),
        ("user.?nick.hasValue()", Is(json!(false))),
        ("user.?nick.or(user.?first).value()", Is(json!("Ada"))),
        ("user.?nick", Is(Value::Null)),
        ("user.?first", Is(json!("Ada"))),
        ("optional.of(1).orValue(2)", Is(json!(1))),
        ("optional.none().orValue(2)", Is(json!(2))),
        // nulls
        ("user.nickname == null", Is(json!(true))),
        (
            "user.nickname != null ? user.nickname : user.first",
            Is(json!("Ada")),
        ),
        // runtime errors
        (
            "user.missing",
            Fails(
                "user.missing is not set: guard with has(user.missing) or use user.?missing.orValue(\"\")",
            ),
        ),
        (
            "user.name.middleName",
            Fails(
                "user.name.middleName is not set: guard with has(user.name.middleName) or use user.name.?middleName.orValue(\"\")",
            ),
        ),
        ("user.tags[\"colour\"]", Fails("no such key: colour")),
        (
            "user.nickname.lower()",
            Fails("`lower` cannot be called on a null_type"),
        ),
        ("user.nickname.lower()", Fails("a value is null")),
        (
            "user.first + 1",
            Fails("`+` cannot be applied to \"Ada\" and 1"),
        ),
        (
            "user.first < 1",
            Fails("`<` cannot be applied to (string, int)"),
        ),
        (
            "user.age.startsWith(\"3\")",
            Fails("`startsWith` cannot be called on a int"),
        ),
        ("user.groups[5]", Fails("index 5 is out of range")),
        (
            "user.first.matches(user.empty + \"[\")",
            Fails("invalid regular expression \"[\""),
        ),
        ("1 / 0", Fails("division by zero")),
        ("9223372036854775807 + 1", Fails("integer overflow")),
        ("int(\"x\")", Fails("int")),
        ("user.height / 0.0", Fails("not a finite number")),
        ("b\"\\xff\"", Fails("not UTF-8")),
        ("{\"a\": 1, \"a\": 2}", Fails("repeats the key")),
        ("[1, \"a\"][2]", Fails("out of range")),
    ];
    let mut failures = Vec::new();
    for (expr, want) in cases {
        let got = eval(expr, &user);
        let ok = match (&want, &got) {
            (Is(v), Ok(g)) => v == g,
            (Fails(m), Err(EvalError(e))) => e.contains(m),
            _ => false,
        };
        if !ok {
            let want = match want {
                Is(v) => format!("{v}"),
                Fails(m) => format!("error containing {m:?}"),
            };
            failures.push(format!("{expr}\n    want {want}\n    got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn eval_bool_wants_a_bool() {
    let user = sample_user();
    let expr = Expr::compile("user.isAdmin && !user.suspended").unwrap();
    assert!(expr.eval_bool(&user, "s").unwrap());
    let err = Expr::compile("user.first")
        .unwrap()
        .eval_bool(&user, "s")
        .unwrap_err();
    assert_eq!(err.0, "expected true or false, got \"Ada\"");
    let err = Expr::compile("user.nickname")
        .unwrap()
        .eval_bool(&user, "s")
        .unwrap_err();
    assert_eq!(err.0, "expected true or false, got null");
    let err = Expr::compile("user.missing")
        .unwrap()
        .eval_bool(&user, "s")
        .unwrap_err();
    assert!(err.0.contains("user.missing is not set"), "{err}");
}

fn compile_error(expr: &str) -> CompileError {
    match Expr::compile(expr) {
        Ok(_) => panic!("{expr}: compiled"),
        Err(e) => e,
    }
}

#[test]
fn rejects_unknown_variables_at_compile_time() {
    let cases = [
        (
            "email",
            "unknown variable `email`",
            "did you mean `user.email`?",
            0,
        ),
        (
            "user.a == 1 && usr.b",
            "unknown variable `usr`",
            "did you mean `user`?",
            15,
        ),
        (
            "sorce == \"x\"",
            "unknown variable `sorce`",
            "did you mean `source`?",
            0,
        ),
        ("[1].map(x, y)", "unknown variable `y`", "user.y", 11),
    ];
    for (expr, what, hint, offset) in cases {
        let e = compile_error(expr);
        assert!(e.message.contains(what), "{expr}: {}", e.message);
        assert!(e.message.contains(hint), "{expr}: {}", e.message);
        assert_eq!(e.offset, Some(offset), "{expr}: {}", e.message);
    }
    // bound by macros, types, and the two variables
    for ok in [
        "user.groups.exists(g, g == source)",
        "user.groups.map(g, [g].all(h, h == g))",
        "type(user.age) == int || type(user.age) == uint || type(user) == map",
        "{\"k\": 1}.exists(k, k == \"k\")",
    ] {
        Expr::compile(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn rejects_unknown_functions_with_a_suggestion() {
    let cases = [
        (
            "user.email.lowercase()",
            "unknown function `lowercase`; did you mean `lower`?",
            11,
        ),
        ("toLower(user.email)", "unknown function `toLower`", 0),
        ("user.x.startswith(\"a\")", "did you mean `startsWith`?", 7),
        (
            "user.x.zzzzzzzzzzzz()",
            "unknown function `zzzzzzzzzzzz`",
            7,
        ),
        (
            "join(user.groups, \",\")",
            "`join` is a method: write x.join(...)",
            0,
        ),
        ("user.x.int()", "`int` is not a method", 7),
        (
            "user.groups.exists(g)",
            "`exists` is written list.exists(x, condition)",
            12,
        ),
        ("has(user.a, 1)", "`has` is written has(user.field)", 0),
        ("\"é\" + user.x.lowr()", "did you mean `lower`?", 13),
        (
            "user.x.matches(\"[\")",
            "invalid regular expression \"[\"",
            15,
        ),
        ("matches(user.x, \"(\")", "invalid regular expression", 16),
        ("Foo{a: 1}", "builds a message", 3),
    ];
    for (expr, want, offset) in cases {
        let e = compile_error(expr);
        assert!(e.message.contains(want), "{expr}: {}", e.message);
        assert_eq!(e.offset, Some(offset), "{expr}: {}", e.message);
    }
}

#[test]
fn parse_errors_carry_a_char_offset() {
    let cases = [
        ("user.a +", "unexpected end of expression", 8),
        ("user.a + )", "unexpected `)`", 9),
        ("\"éé\" + )", "unexpected `)`", 7),
        ("user.a\n  && )", "unexpected `)`", 12),
        ("1 +* 2", "unexpected `*`", 3),
        ("(user.a", "missing `)`", 7),
        ("\"open", "unexpected", 0),
        ("user.a user.b", "unexpected", 7),
        ("   ", "expression is empty", 0),
    ];
    for (expr, want, offset) in cases {
        let e = compile_error(expr);
        assert!(e.message.contains(want), "{expr}: {}", e.message);
        assert_eq!(e.offset, Some(offset), "{expr}: {}", e.message);
    }
}

/// Each entry of the function table is known to the interpreter exactly in the styles it
/// declares: a call in another style is an undeclared reference.
#[test]
fn function_table_matches_the_environment() {
    let env = library::env().unwrap();
    let run = |text: &str| {
        let ast = env.parser().parse(text).unwrap();
        let context = cel::Context::with_env(env.clone());
        cel::Value::resolve_val(&ast, &context)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let undeclared = |r: &Result<(), String>| {
        r.as_ref()
            .err()
            .is_some_and(|e| e.starts_with("Undeclared reference"))
    };
    for (name, style) in FUNCTIONS {
        let (global, method) = match name.rsplit_once('.') {
            // namespaced functions are global only
            Some(_) => (format!("{name}()"), None),
            None => (format!("{name}(dyn)"), Some(format!("dyn.{name}()"))),
        };
        let global = run(&global.replace("(dyn)", "(1)"));
        assert_eq!(
            !undeclared(&global),
            style.global(),
            "{name} as a function: {global:?}"
        );
        if let Some(method) = method {
            let method = run(&method.replace("dyn.", "1."));
            assert_eq!(
                !undeclared(&method),
                style.method(),
                "{name} as a method: {method:?}"
            );
        }
    }
}

#[test]
fn functions_doc_mentions_every_required_function() {
    for name in [
        "lower",
        "upper",
        "trim",
        "split",
        "join",
        "replace",
        "startsWith",
        "endsWith",
        "contains",
        "matches",
        "size",
        "has",
        "orValue",
        "`in`",
        "? a : b",
    ] {
        let name = name.trim_matches('`');
        assert!(FUNCTIONS_DOC.contains(name), "{name}");
    }
    assert!(
        FUNCTIONS
            .iter()
            .any(|(n, s)| *n == "lower" && *s == Style::Both)
    );
}

#[test]
fn reads_only_the_keys_it_needs() {
    let access = |e: &str| Expr::compile(e).unwrap().compiled.access.keys.clone();
    assert_eq!(
        access("user.name.givenName + user[\"first\"] + user.?nick.orValue(\"\")"),
        Some(vec![
            "first".to_owned(),
            "name".to_owned(),
            "nick".to_owned()
        ])
    );
    assert_eq!(
        access("has(user.a) && source == \"x\""),
        Some(vec!["a".to_owned()])
    );
    assert_eq!(access("size(user) > 0"), None);
    assert_eq!(access("user[user.k]"), None);
    assert_eq!(access("\"a\" in user"), None);
    // a record that is not an object is converted whole
    let expr = Expr::compile("user == \"x\"").unwrap();
    assert_eq!(expr.eval(&json!("x"), "s").unwrap(), json!(true));
}

#[test]
fn expr_is_cheap_to_share() {
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
    assert_traits::<Expr>();
    let expr = Expr::compile("user.a.lower()").unwrap();
    assert_eq!(expr.source(), "user.a.lower()");
    let copy = expr.clone();
    let handle = std::thread::spawn(move || copy.eval(&json!({"a": "X"}), "s"));
    assert_eq!(handle.join().unwrap().unwrap(), json!("x"));
    assert_eq!(format!("{expr:?}"), r#"Expr("user.a.lower()")"#);
}

/// Nothing a config can contain, nor any record, makes compiling or evaluating panic or
/// overflow the stack. Runs on a thread with a small (2 MiB) stack, like test and worker
/// threads, to prove the depth limit keeps evaluation within it.
#[test]
fn never_panics() {
    let mut inputs: Vec<String> = [
        "",
        " ",
        "(",
        ")",
        "((",
        "user.",
        ".",
        "user..a",
        "user.a.",
        "[",
        "]",
        "{",
        "}",
        "{1:}",
        "\"",
        "'",
        "\\",
        "`",
        "@",
        "#",
        "$",
        "é",
        "💥",
        "user.💥",
        "\u{0}",
        "\"\u{0}\"",
        "99999999999999999999999999",
        "-9223372036854775808",
        "9223372036854775807",
        "-9223372036854775809",
        "18446744073709551616u",
        "1e999",
        "-1e999",
        "0x",
        "0xffffffffffffffffff",
        "1.",
        ".1",
        "1..2",
        "user[",
        "user[]",
        "user[?]",
        "user.?",
        "?",
        "? :",
        "a ? b",
        "true ?",
        "has()",
        "has(user)",
        "has(1)",
        "has(user.a.b.c)",
        "user.a.exists()",
        "user.exists(x)",
        "[].map()",
        "[1].map(1, 1)",
        "[1].map(x, x, x, x)",
        "[1].all(x.y, true)",
        "optional",
        "optional.of()",
        "optional.none(1)",
        "optional.foo()",
        "user.optional.of(1)",
        "{?\"a\": user.?b}",
        "[?user.?a]",
        "user[?\"a\"][?\"b\"]",
        "user.?a.?b.?c.orValue(1)",
        "user.a.b.c.d.e.f.g",
        "user[0]",
        "user[-1]",
        "user[1.5]",
        "user[true]",
        "user[null]",
        "user.a[0][0][0]",
        "{null: 1}",
        "{[1]: 1}",
        "{{}: 1}",
        "[1,2,3][-1]",
        "[1][1u]",
        "\"abc\"[0]",
        "size(1)",
        "size()",
        "size(1, 2)",
        "1 in 1",
        "1 in {}",
        "[] in []",
        "int(1e99)",
        "uint(-1)",
        "int(\"\")",
        "double(\"x\")",
        "bytes(1)",
        "string(b\"\\xff\")",
        "\"a\".matches(\"(\")",
        "\"a\".split(\"\")",
        "\"\".split(\"\", -5)",
        "\"a\".replace(\"\", \"b\")",
        "\"a\".substring(5)",
        "\"a\".substring(1, 0)",
        "\"a\".charAt(-1)",
        "\"a\".indexOf(\"a\", 9)",
        "\"%s\".format(1)",
        "\"%d\".format([\"x\"])",
        "\"%\".format([])",
        "\"%.999999999f\".format([1.0])",
        "strings.quote(1)",
        "[1, \"a\"].join()",
        "[[1]].join(\",\")",
        "lower(1)",
        "upper(null)",
        "-(-9223372036854775807 - 1)",
        "9223372036854775807 * 2",
        "-9223372036854775807 - 2",
        "1 % 0",
        "1.0 % 2.0",
        "1 / 0",
        "0.0 / 0.0",
        "18446744073709551615u + 1u",
        "0u - 1u",
        "type(type)",
        "type(user)",
        "dyn(user)",
        "google.protobuf.Int64Value{value: 1}",
        "user == user",
        "user != {}",
        "[user] == [user]",
        "user.groups + user.groups",
        "user.groups.map(g, user.groups.map(h, g + h))",
        "source.lower().upper().trim()",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for n in [10, 31, 32, 33, 40, 100, 1000, 3000] {
        inputs.push(format!("{}1{}", "(".repeat(n), ")".repeat(n)));
        inputs.push("(".repeat(n));
        inputs.push(")".repeat(n));
        inputs.push(format!("{}1{}", "[".repeat(n), "]".repeat(n)));
        inputs.push(format!("{}true", "!".repeat(n)));
        inputs.push(format!("{}1", "-".repeat(n)));
        inputs.push(format!("1{}", " + 1".repeat(n)));
        inputs.push(format!("user{}", ".a".repeat(n)));
        inputs.push(format!("user.a{}", ".lower()".repeat(n)));
        inputs.push(format!("{}\"a\"{}", "lower(".repeat(n), ")".repeat(n)));
        inputs.push(format!("true{}", " && true".repeat(n)));
        inputs.push(format!("{}1", "true ? 1 : ".repeat(n)));
        inputs.push(format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n)));
        inputs.push(format!("[1]{}", ".map(x, [x])".repeat(n)));
    }
    inputs.push("1".repeat(20_000));
    inputs.push(format!("\"{}\"", "a".repeat(9_000)));

    let mut deep = json!("leaf");
    for _ in 0..200 {
        deep = json!({ "a": deep, "l": [1] });
    }
    let records = [
        sample_user(),
        json!({}),
        json!(null),
        json!([1, 2]),
        json!("user"),
        json!({"a": {"a": {"a": null}}, "groups": [null, 1, "x", [], {}]}),
        json!({"a": f64::MAX, "b": i64::MIN, "c": u64::MAX}),
        deep,
    ];

    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let mut compiled = 0;
            for input in &inputs {
                let Ok(expr) = Expr::compile(input) else {
                    continue;
                };
                compiled += 1;
                for record in &records {
                    let _ = expr.eval(record, "src");
                    let _ = expr.eval_bool(record, "src");
                }
            }
            compiled
        })
        .unwrap();
    let compiled = worker.join().expect("no panic or overflow");
    assert!(compiled > 50, "only {compiled} inputs compiled");
}

#[test]
fn depth_limit_is_reported() {
    let e = compile_error(&format!("1{}", " + 1".repeat(40)));
    assert!(
        e.message.contains("nests more than 32 levels"),
        "{}",
        e.message
    );
    let e = compile_error(&format!("{}1{}", "(".repeat(200), ")".repeat(200)));
    assert!(e.message.contains("nests too deeply"), "{}", e.message);
    let e = compile_error(&"1".repeat(MAX_SOURCE_CHARS + 1));
    assert!(e.message.contains("limit is 10000"), "{}", e.message);
    // the limit still leaves room for long, flat expressions
    Expr::compile(&["user.a"; 12].join(" + \" \" + ")).unwrap();
    Expr::compile(&vec!["user.a == \"x\""; 200].join(" || ")).unwrap();
}

#[test]
fn regex_cache_survives_many_patterns() {
    let expr = Expr::compile("user.s.matches(user.p)").unwrap();
    for i in 0..600 {
        let record = json!({"s": format!("x{i}"), "p": format!("^x{i}$")});
        assert_eq!(expr.eval(&record, "s").unwrap(), json!(true));
    }
}

/// Issue 7 point 3: an expression cannot grow without bound. Each case must fail on the record
/// quickly, naming the limit.
#[test]
fn evaluation_is_bounded() {
    let record = json!({
        "name": "Ann Archer",
        "groups": ["a", "b", "c"],
        "big": "x".repeat(200_000),
        "huge": "y".repeat(2 * 1024 * 1024),
        "many": (0..400).map(|i| i.to_string()).collect::<Vec<_>>(),
    });
    let twelve_replaces = format!("user.name{}", ".replace(\"n\", \"nnnnnnnn\")".repeat(12));
    let cases: Vec<(String, &str)> = vec![
        (twelve_replaces, "per value"),
        ("user.big.replace(\"x\", user.big)".to_owned(), "per value"),
        (
            "user.big + user.big + user.big + user.big + user.big + user.big".to_owned(),
            "per value",
        ),
        (
            "[user.big, user.big, user.big, user.big, user.big, user.big]".to_owned(),
            "per value",
        ),
        (
            "user.big.split(\"\").join(user.big)".to_owned(),
            "per value",
        ),
        ("user.big.split(\"\").map(x, user.big)".to_owned(), "limit"),
        (
            "user.big.split(\"\").all(a, user.groups.all(b, user.groups.all(c, a != c)))"
                .to_owned(),
            "limit",
        ),
        (
            "user.many.all(a, user.many.all(b, user.many.all(c, true)))".to_owned(),
            "steps",
        ),
        (
            "user.huge.size() > 0".to_owned(),
            "expressions read values up to 1 MiB",
        ),
    ];
    for (source, words) in cases {
        let expr = Expr::compile(&source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let started = std::time::Instant::now();
        let err = expr.eval(&record, "hr").expect_err(&source);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{source} took {:?}",
            started.elapsed()
        );
        assert!(err.0.contains(words), "{source}: {err}");
    }
    // Ordinary expressions are unaffected.
    for (source, want) in [
        ("user.name.replace(\"Ann\", \"Anna\")", json!("Anna Archer")),
        ("user.groups.join(\",\")", json!("a,b,c")),
        ("user.groups.map(g, g + \"!\")", json!(["a!", "b!", "c!"])),
        ("user.groups.filter(g, g != \"b\")", json!(["a", "c"])),
        ("size(user.big + user.big)", json!(400_000)),
        ("\"a-b\".replace(\"-\", \"\", 1)", json!("ab")),
        ("\"ab\".replace(\"\", \"-\")", json!("-a-b-")),
        ("[1] + [2]", json!([1, 2])),
        ("1 + 2", json!(3)),
    ] {
        let expr = Expr::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(expr.eval(&record, "hr").unwrap(), want, "{source}");
    }
}

/// Issue 7 point 10: a CSV header with stray spaces is named with the trimmed name to use.
#[test]
fn a_key_with_stray_spaces_is_suggested() {
    let expr = Expr::compile("user.email").unwrap();
    let err = expr
        .eval(&json!({" email ": "a@x.io", "name": "Ann"}), "hr")
        .unwrap_err();
    assert!(err.0.contains("user.email is not set"), "{err}");
    assert!(err.0.contains("`\" email \"` with stray spaces"), "{err}");
    assert!(err.0.contains("reads `email`"), "{err}");
    let err = expr.eval(&json!({"name": "Ann"}), "hr").unwrap_err();
    assert!(!err.0.contains("stray"), "{err}");
}
