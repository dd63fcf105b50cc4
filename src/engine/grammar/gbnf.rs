//! A syntax check of GBNF grammars that follows llama.cpp's own parser
//! (`llama_grammar_parser::parse` in src/llama-grammar.cpp), step for step.
//!
//! Why: llama.cpp prints a grammar's syntax error straight to stderr (`fprintf`), past any log
//! setting, and reports only failure to the caller. Checking first gives the caller an
//! `INVALID_ARGUMENT` that says where the grammar is wrong, at submit time, and keeps stderr
//! quiet. Whether a `<token>` is one token of the vocabulary needs the model: `check` returns
//! the references, and the engine checks them on the prompt thread. The limit on rules that
//! nested repetitions generate is left to llama.cpp, which still rejects it.
//!
//! The check is stricter than llama.cpp in three places only, each where llama.cpp itself
//! would take the process down: a NUL written as an escape (llama.cpp's end marker for
//! character lists; the sampler later throws across the FFI), `{m,n}` with n < m (the parser
//! loops, allocating without end), and parentheses nested deeper than `MAX_NESTING` (its
//! recursive parser overflows the inference thread's stack).

use std::collections::BTreeSet;

/// llama.cpp's MAX_REPETITION_THRESHOLD.
const MAX_REPETITIONS: u64 = 2000;
/// Deepest `(` nesting accepted; 5,000 levels crashed llama.cpp's parser here.
const MAX_NESTING: usize = 256;

/// A `<…>` token reference, which only the model's vocabulary can check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenRef {
    /// `<[id]>`
    Id(u32),
    /// `<text>`, brackets included: llama.cpp requires it to tokenize to exactly one token.
    Text(String),
}

/// A token reference and where it is ("line 1, column 10").
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUse {
    pub token: TokenRef,
    pub place: String,
}

/// Checks `src` and that it defines `root`. The error says what and where (line, column).
/// Returns the token references, for a check against the vocabulary.
pub fn check(src: &str, root: &str) -> Result<Vec<TokenUse>, String> {
    if src.contains('\0') {
        return Err("the grammar contains a NUL character".into());
    }
    let mut p = Parser {
        src,
        s: src.as_bytes(),
        defined: BTreeSet::new(),
        referenced: Vec::new(),
        depth: 0,
        tokens: Vec::new(),
    };
    let mut i = p.space(0, true);
    while i < p.s.len() {
        i = p.rule(i)?;
    }
    if let Some((name, at)) = p.referenced.iter().find(|(n, _)| !p.defined.contains(n)) {
        return Err(format!(
            "rule `{name}` is used but never defined ({})",
            p.place(*at)
        ));
    }
    if !p.defined.contains(root) {
        return Err(format!(
            "the grammar has no `{root}` rule: generation starts there"
        ));
    }
    Ok(p.tokens)
}

struct Parser<'a> {
    src: &'a str,
    s: &'a [u8],
    defined: BTreeSet<&'a str>,
    referenced: Vec<(&'a str, usize)>,
    /// Parentheses open at the current position.
    depth: usize,
    tokens: Vec<TokenUse>,
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

impl<'a> Parser<'a> {
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn place(&self, i: usize) -> String {
        let before = &self.src[..i.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}")
    }

    fn fail<T>(&self, what: &str, i: usize) -> Result<T, String> {
        Err(format!("{what} at {}", self.place(i)))
    }

    fn space(&self, mut i: usize, newline_ok: bool) -> usize {
        loop {
            match self.at(i) {
                b' ' | b'\t' => i += 1,
                b'\r' | b'\n' if newline_ok => i += 1,
                b'#' => {
                    while !matches!(self.at(i), 0 | b'\r' | b'\n') {
                        i += 1;
                    }
                }
                _ => return i,
            }
        }
    }

    fn name(&self, i: usize) -> Result<usize, String> {
        let mut j = i;
        while is_word(self.at(j)) {
            j += 1;
        }
        if j == i {
            return self.fail("expecting a rule name", i);
        }
        Ok(j)
    }

    fn int(&self, i: usize) -> Result<(u64, usize), String> {
        let mut j = i;
        while self.at(j).is_ascii_digit() {
            j += 1;
        }
        if j == i {
            return self.fail("expecting an integer", i);
        }
        match self.src[i..j].parse::<u64>() {
            Ok(n) => Ok((n, j)),
            Err(_) => self.fail("integer too large", i),
        }
    }

    /// One character of a literal or a character class; returns the index after it.
    fn char(&self, i: usize) -> Result<usize, String> {
        if self.at(i) == b'\\' {
            let hex = |digits: usize| {
                let start = i + 2;
                let ok = (start..start + digits).all(|k| self.at(k).is_ascii_hexdigit());
                if !ok {
                    return self.fail(&format!("expecting {digits} hex digits"), start);
                }
                Ok(start + digits)
            };
            return match self.at(i + 1) {
                b'x' => hex(2),
                b'u' => hex(4),
                b'U' => hex(8),
                b't' | b'r' | b'n' | b'\\' | b'"' | b'[' | b']' | b'-' => Ok(i + 2),
                _ => self.fail("unknown escape", i),
            };
        }
        match self.src[i..].chars().next() {
            Some(c) => Ok(i + c.len_utf8()),
            None => self.fail("unexpected end of the grammar", i),
        }
    }

    /// An escape for code point 0 starts at `i`. llama.cpp ends character lists with 0, so
    /// only a range may start with it (`[^\x00-\x1F]`, as in its own json.gbnf).
    fn nul_escape(&self, i: usize) -> bool {
        let digits = match (self.at(i), self.at(i + 1)) {
            (b'\\', b'x') => 2,
            (b'\\', b'u') => 4,
            (b'\\', b'U') => 8,
            _ => return false,
        };
        (i + 2..i + 2 + digits).all(|k| self.at(k) == b'0')
    }

    fn no_nul(&self, i: usize) -> Result<(), String> {
        if self.nul_escape(i) {
            return self.fail(
                "NUL (code point 0) can only start a range in a character class",
                i,
            );
        }
        Ok(())
    }

    /// `<[id]>` or `<text>`; returns the index after it.
    fn token(&mut self, i: usize) -> Result<usize, String> {
        if self.at(i) != b'<' {
            return self.fail("expecting '<'", i);
        }
        let mut j = i + 1;
        if self.at(j) == b'[' {
            let (id, end) = self.int(j + 1)?;
            if id > u64::from(u32::MAX) {
                return self.fail("token id too large", j + 1);
            }
            if self.at(end) != b']' {
                return self.fail("expecting ']'", end);
            }
            if self.at(end + 1) != b'>' {
                return self.fail("expecting '>'", end + 1);
            }
            self.tokens.push(TokenUse {
                token: TokenRef::Id(id as u32),
                place: self.place(i),
            });
            return Ok(end + 2);
        }
        while !matches!(self.at(j), 0 | b'>') {
            j += 1;
        }
        if self.at(j) != b'>' {
            return self.fail("expecting '>'", j);
        }
        self.tokens.push(TokenUse {
            token: TokenRef::Text(self.src[i..=j].to_string()),
            place: self.place(i),
        });
        Ok(j + 1)
    }

    fn alternates(&mut self, i: usize, nested: bool) -> Result<usize, String> {
        let mut i = self.sequence(i, nested)?;
        while self.at(i) == b'|' {
            i = self.space(i + 1, true);
            i = self.sequence(i, nested)?;
        }
        Ok(i)
    }

    fn sequence(&mut self, mut i: usize, nested: bool) -> Result<usize, String> {
        // Whether an item precedes that `*`, `+`, `?` or `{m,n}` can apply to (llama.cpp:
        // last_sym_start != rule.size()).
        let mut has_item = false;
        loop {
            match self.at(i) {
                b'"' => {
                    i += 1;
                    has_item = false;
                    while self.at(i) != b'"' {
                        if i >= self.s.len() {
                            return self.fail("unterminated string", i);
                        }
                        self.no_nul(i)?;
                        i = self.char(i)?;
                        has_item = true;
                    }
                    i = self.space(i + 1, nested);
                }
                b'[' => {
                    i += 1;
                    if self.at(i) == b'^' {
                        i += 1;
                    }
                    has_item = false;
                    while self.at(i) != b']' {
                        if i >= self.s.len() {
                            return self.fail("unterminated character class", i);
                        }
                        let first = i;
                        i = self.char(i)?;
                        has_item = true;
                        if self.at(i) == b'-' && self.at(i + 1) != b']' {
                            if i + 1 >= self.s.len() {
                                return self.fail("unterminated character class", i + 1);
                            }
                            self.no_nul(i + 1)?;
                            i = self.char(i + 1)?;
                        } else {
                            self.no_nul(first)?;
                        }
                    }
                    i = self.space(i + 1, nested);
                }
                b'<' | b'!' => {
                    let start = if self.at(i) == b'!' { i + 1 } else { i };
                    let end = self.token(start)?;
                    i = self.space(end, nested);
                    has_item = true;
                }
                c if is_word(c) => {
                    let end = self.name(i)?;
                    self.referenced.push((&self.src[i..end], i));
                    i = self.space(end, nested);
                    has_item = true;
                }
                b'(' => {
                    let open = i;
                    if self.depth == MAX_NESTING {
                        return self.fail(
                            &format!("parentheses nested deeper than {MAX_NESTING} levels"),
                            i,
                        );
                    }
                    self.depth += 1;
                    i = self.space(i + 1, true);
                    i = self.alternates(i, true)?;
                    self.depth -= 1;
                    if self.at(i) != b')' {
                        return self.fail(
                            &format!("expecting ')' to close the '(' at {}", self.place(open)),
                            i,
                        );
                    }
                    i = self.space(i + 1, nested);
                    has_item = true;
                }
                b'.' => {
                    i = self.space(i + 1, nested);
                    has_item = true;
                }
                b'*' | b'+' | b'?' => {
                    if !has_item {
                        return self.fail("expecting an item before */+/?", i);
                    }
                    i = self.space(i + 1, nested);
                }
                b'{' => {
                    let open = i;
                    i = self.space(i + 1, nested);
                    if !self.at(i).is_ascii_digit() {
                        return self.fail("expecting an integer after '{'", i);
                    }
                    let (min, end) = self.int(i)?;
                    i = self.space(end, nested);
                    let max = match self.at(i) {
                        b'}' => {
                            i = self.space(i + 1, nested);
                            Some(min)
                        }
                        b',' => {
                            i = self.space(i + 1, nested);
                            let mut max = None;
                            if self.at(i).is_ascii_digit() {
                                let (n, end) = self.int(i)?;
                                max = Some(n);
                                i = self.space(end, nested);
                            }
                            if self.at(i) != b'}' {
                                return self.fail("expecting '}'", i);
                            }
                            i = self.space(i + 1, nested);
                            max
                        }
                        _ => return self.fail("expecting ',' or '}'", i),
                    };
                    if let Some(max) = max.filter(|&max| max < min) {
                        return self.fail(
                            &format!("the repetition maximum {max} is below its minimum {min}"),
                            open,
                        );
                    }
                    if min > MAX_REPETITIONS {
                        return self
                            .fail(&format!("more than {MAX_REPETITIONS} repetitions"), open);
                    }
                    if !has_item {
                        return self.fail("expecting an item before '{'", open);
                    }
                    // `x{0}` leaves nothing behind to repeat again.
                    let max = max.filter(|&m| m <= MAX_REPETITIONS);
                    has_item = !(min == 0 && max == Some(0));
                }
                _ => return Ok(i),
            }
        }
    }

    fn rule(&mut self, i: usize) -> Result<usize, String> {
        let end = self.name(i)?;
        let name = &self.src[i..end];
        let mut i = self.space(end, false);
        if !self.s[i..].starts_with(b"::=") {
            return self.fail(&format!("expecting '::=' after the rule name `{name}`"), i);
        }
        i = self.space(i + 3, true);
        i = self.alternates(i, false)?;
        match self.at(i) {
            b'\r' => i += if self.at(i + 1) == b'\n' { 2 } else { 1 },
            b'\n' => i += 1,
            0 if i >= self.s.len() => {}
            _ => return self.fail("expecting a newline or the end of the grammar", i),
        }
        self.defined.insert(name);
        Ok(self.space(i, true))
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    const VALID: &[&str] = &[
        r#"root ::= "yes" | "no""#,
        "root ::= [0-9]+ (\"+\" [0-9]+)*\n",
        "# a comment\nroot ::= item{2,4} item{3} item{1,}\nitem ::= [a-z\\-\\]] | \"\\x41\\u00e9\\U0001F600\\n\\t\\\"\"\r\n",
        "root ::= ( \"a\"\n  | \"b\" # nested newlines are fine\n)\n",
        "root ::= <[12]> !<[13]> <think> .\n",
        "root ::= [^\"\\\\] \"سلام\" [ا-ی]?\n",
        "root ::= \"\" | x\nx ::= \"a\"{0,}\n",
        // llama.cpp's grammars/json.gbnf
        r#"root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
"#,
    ];

    #[test]
    fn accepts_what_llama_cpp_accepts() {
        for g in VALID {
            assert!(check(g, "root").is_ok(), "{g}");
        }
    }

    #[test]
    fn rejects_with_a_place() {
        let cases: &[(&str, &str)] = &[
            ("root ::= (", "expecting ')'"),
            ("root ::= ( \"a\"", "expecting ')'"),
            ("root = \"a\"", "expecting '::='"),
            (
                "root ::= \"a\" | undefined-rule",
                "`undefined-rule` is used but never defined",
            ),
            // `_` is not a name character: llama.cpp stops the rule there.
            ("root ::= \"a\" | bad_name", "expecting a newline"),
            ("root ::= \"a\" )", "expecting a newline"),
            ("root ::= \"\\q\"", "unknown escape"),
            ("root ::= \"\\x4\"", "hex digits"),
            ("root ::= *", "expecting an item"),
            ("root ::= \"a\"{", "expecting an integer"),
            ("root ::= \"a\"{2", "expecting ',' or '}'"),
            ("root ::= \"a\"{2,3", "expecting '}'"),
            ("root ::= \"a\"{2001}", "repetitions"),
            ("root ::= \"abc", "unterminated string"),
            ("root ::= [abc", "unterminated character class"),
            ("root ::= <[12]", "expecting '>'"),
            ("x ::= \"a\"", "no `root` rule"),
            ("root ::= \"a\"\n  | \"b\"", "expecting a rule name"),
            ("", "no `root` rule"),
            // Where llama.cpp itself would crash, loop or abort.
            ("root ::= \"a\" \"\\x00\"", "NUL"),
            ("root ::= [\\x00]", "NUL"),
            ("root ::= [a-\\x00]", "NUL"),
            ("root ::= \"\\u0000\"", "NUL"),
            ("root ::= \"x\"{3,2}", "maximum 2 is below its minimum 3"),
        ];
        for (g, want) in cases {
            let err = check(g, "root").unwrap_err();
            assert!(err.contains(want), "{g:?}: {err}");
        }
        let deep = |n: usize| format!("root ::= {}\"a\"{}", "(".repeat(n), ")".repeat(n));
        assert!(check(&deep(256), "root").is_ok());
        assert!(check(&deep(257), "root")
            .unwrap_err()
            .contains("nested deeper"));
        assert!(check(&deep(100_000), "root")
            .unwrap_err()
            .contains("nested deeper"));
        let err = check("root ::= \"a\"\nitem ::= (\"b\"", "root").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
