//! The canonical printer.

use crate::diagnostics::Diagnostic;
use crate::syntax::{
    Attribute, Block, Body, Comment, Expr, ExprKind, FileId, ForIntro, Item, ObjectKey, Step,
    parse_file,
};

/// Formats one file's text. Files with syntax errors are not formatted:
/// their diagnostics come back instead.
pub fn format_source(file: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let (tree, diagnostics) = parse_file(file, text);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let mut printer = Printer {
        text,
        comments: &tree.comments,
        next_comment: 0,
        out: String::with_capacity(text.len() + text.len() / 8),
    };
    printer.body(&tree.body, 0, text.len(), true);
    let mut out = printer.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

struct Printer<'a> {
    text: &'a str,
    comments: &'a [Comment],
    next_comment: usize,
    out: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Previous {
    Nothing,
    Comment,
    Item,
}

fn pad(indent: usize) -> String {
    " ".repeat(indent)
}

impl Printer<'_> {
    fn source(&self, start: u32, end: u32) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// Was there a blank line in the source between two offsets?
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let gap = self.text.get(from..to).unwrap_or("");
        let mut newlines = 0;
        for c in gap.chars() {
            if c == '\n' {
                newlines += 1;
                if newlines >= 2 {
                    return true;
                }
            } else if !c.is_whitespace() && c != ',' {
                newlines = 0;
            }
        }
        false
    }

    fn is_multiline(&self, expr: &Expr) -> bool {
        self.source(expr.span.start, expr.span.end).contains('\n')
    }

    fn peek_comment(&self) -> Option<&Comment> {
        self.comments.get(self.next_comment)
    }

    fn skip_comments_before(&mut self, end: u32) {
        while self.peek_comment().is_some_and(|c| c.span.start < end) {
            self.next_comment += 1;
        }
    }

    fn has_comment_within(&self, start: u32, end: u32) -> bool {
        self.comments[self.next_comment..]
            .iter()
            .take_while(|c| c.span.start < end)
            .any(|c| c.span.start >= start)
    }

    fn separate(
        &mut self,
        previous: Previous,
        previous_end: usize,
        next_start: usize,
        top_level: bool,
    ) {
        let blank = match previous {
            Previous::Nothing => false,
            Previous::Item if top_level => true,
            _ => self.blank_between(previous_end, next_start),
        };
        if blank {
            self.out.push('\n');
        }
    }

    /// Prints the items of a body at `indent`; `end` is where the body ends
    /// in the source (its `}` or the end of the file).
    fn body(&mut self, body: &Body, indent: usize, end: usize, top_level: bool) {
        let widths = self.alignment(&body.items, top_level);
        let mut previous = Previous::Nothing;
        let mut previous_end = 0usize;
        for (index, item) in body.items.iter().enumerate() {
            let start = item.span().start;
            while let Some(comment) = self
                .peek_comment()
                .filter(|c| c.span.start < start)
                .cloned()
            {
                self.separate(
                    previous,
                    previous_end,
                    comment.span.start as usize,
                    top_level,
                );
                self.out.push_str(&pad(indent));
                self.out.push_str(comment.text.trim_end());
                self.out.push('\n');
                self.next_comment += 1;
                previous = Previous::Comment;
                previous_end = comment.span.end as usize;
            }
            self.separate(previous, previous_end, start as usize, top_level);
            match item {
                Item::Attribute(attribute) => self.attribute(attribute, indent, widths[index]),
                Item::Block(block) => self.block(block, indent),
            }
            let item_end = item.span().end;
            // A comment after the item on the same line stays there.
            let next_start = body
                .items
                .get(index + 1)
                .map(|next| next.span().start)
                .unwrap_or(end as u32);
            let mut line_end = item_end as usize;
            if let Some(comment) = self.peek_comment().cloned()
                && comment.span.start >= item_end
                && comment.span.start < next_start
                && !self.source(item_end, comment.span.start).contains('\n')
            {
                self.out.push(' ');
                self.out.push_str(comment.text.trim_end());
                self.next_comment += 1;
                line_end = comment.span.end as usize;
            }
            self.out.push('\n');
            previous = Previous::Item;
            previous_end = line_end;
        }
        while let Some(comment) = self
            .peek_comment()
            .filter(|c| (c.span.start as usize) < end)
            .cloned()
        {
            self.separate(
                if previous == Previous::Item && top_level {
                    Previous::Comment
                } else {
                    previous
                },
                previous_end,
                comment.span.start as usize,
                top_level,
            );
            self.out.push_str(&pad(indent));
            self.out.push_str(comment.text.trim_end());
            self.out.push('\n');
            self.next_comment += 1;
            previous = Previous::Comment;
            previous_end = comment.span.end as usize;
        }
    }

    /// The width to pad each attribute name to: the longest name in its run
    /// (consecutive attributes with no blank line or block between them; at
    /// the top level, where items are always printed a blank line apart,
    /// every attribute is a run of its own, or a second run would realign).
    fn alignment(&self, items: &[Item], top_level: bool) -> Vec<usize> {
        let mut widths = vec![0; items.len()];
        let mut run_start = 0;
        for index in 0..=items.len() {
            let breaks = match (index.checked_sub(1).map(|i| &items[i]), items.get(index)) {
                (_, None) => true,
                (_, Some(Item::Block(_))) => true,
                (Some(Item::Block(_)), _) => true,
                (Some(_), Some(_)) if top_level => true,
                (Some(previous), Some(current)) => {
                    self.blank_between(previous.span().end as usize, current.span().start as usize)
                }
                (None, Some(_)) => false,
            };
            if breaks {
                let width = items[run_start..index]
                    .iter()
                    .filter_map(|item| match item {
                        Item::Attribute(attribute) => Some(attribute.name.name.chars().count()),
                        Item::Block(_) => None,
                    })
                    .max()
                    .unwrap_or(0);
                for slot in &mut widths[run_start..index] {
                    *slot = width;
                }
                run_start = if matches!(items.get(index), Some(Item::Block(_))) {
                    index + 1
                } else {
                    index
                };
            }
        }
        widths
    }

    fn attribute(&mut self, attribute: &Attribute, indent: usize, width: usize) {
        self.out.push_str(&pad(indent));
        self.out.push_str(&attribute.name.name);
        let padding = width.saturating_sub(attribute.name.name.chars().count());
        self.out.push_str(&" ".repeat(padding));
        self.out.push_str(" = ");
        let value = &attribute.value;
        if self.has_comment_within(value.span.start, value.span.end) {
            // Comments inside an expression: keep the expression as written.
            let verbatim = self.source(value.span.start, value.span.end).to_string();
            self.out.push_str(&verbatim);
            self.skip_comments_before(value.span.end);
        } else {
            let printed = self.expr(value, indent);
            self.out.push_str(&printed);
        }
    }

    fn block(&mut self, block: &Block, indent: usize) {
        self.out.push_str(&pad(indent));
        self.out.push_str(&block.kind.name);
        for label in &block.labels {
            self.out.push(' ');
            let written = self.source(label.span.start, label.span.end).to_string();
            self.out.push_str(&written);
        }
        let body_has_content = !block.body.items.is_empty()
            || self.has_comment_within(block.header_span.end, block.span.end);
        if !body_has_content {
            self.out.push_str(" {}");
            return;
        }
        self.out.push_str(" {\n");
        let end = block.span.end.saturating_sub(1) as usize;
        self.body(&block.body, indent + 2, end, false);
        self.out.push_str(&pad(indent));
        self.out.push('}');
    }

    /// Whether `expr` ends with a heredoc's closing line.
    fn ends_with_heredoc(&self, expr: &Expr) -> bool {
        match &expr.kind {
            ExprKind::Template(_) => self
                .source(expr.span.start, expr.span.end)
                .starts_with("<<"),
            ExprKind::Binary { rhs: last, .. }
            | ExprKind::Unary { operand: last, .. }
            | ExprKind::Conditional {
                otherwise: last, ..
            } => self.ends_with_heredoc(last),
            _ => false,
        }
    }

    /// [`Self::expr`] of an expression something follows on its line (a
    /// `,`, a `)`, an operator): after a heredoc that goes on the next line,
    /// since a closing marker must be alone on its line.
    fn followed(&mut self, expr: &Expr, indent: usize) -> String {
        let mut out = self.expr(expr, indent);
        if self.ends_with_heredoc(expr) {
            out.push('\n');
            out.push_str(&pad(indent));
        }
        out
    }

    fn expr(&mut self, expr: &Expr, indent: usize) -> String {
        match &expr.kind {
            ExprKind::Null | ExprKind::Bool(_) | ExprKind::Number(_) | ExprKind::Template(_) => {
                self.source(expr.span.start, expr.span.end).to_string()
            }
            ExprKind::Variable(ident) => ident.name.clone(),
            ExprKind::Traversal { root, steps } => {
                let mut out = self.expr(root, indent);
                for step in steps {
                    match step {
                        Step::Attr(ident) => {
                            out.push('.');
                            out.push_str(&ident.name);
                        }
                        Step::Index(index) => {
                            out.push('[');
                            out.push_str(&self.followed(index, indent));
                            out.push(']');
                        }
                        Step::Splat(_) => out.push_str("[*]"),
                    }
                }
                out
            }
            ExprKind::Call {
                name,
                args,
                expand_final,
            } => {
                let printed: Vec<String> =
                    args.iter().map(|arg| self.followed(arg, indent)).collect();
                let ellipsis = if *expand_final { "..." } else { "" };
                format!("{}({}{ellipsis})", name.name, printed.join(", "))
            }
            ExprKind::Unary { op, operand } => {
                format!("{}{}", op.symbol(), self.expr(operand, indent))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                format!(
                    "{} {} {}",
                    self.followed(lhs, indent),
                    op.symbol(),
                    self.expr(rhs, indent)
                )
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => format!(
                "{} ? {} : {}",
                self.followed(condition, indent),
                self.followed(then, indent),
                self.expr(otherwise, indent)
            ),
            ExprKind::Parenthesized(inner) => format!("({})", self.followed(inner, indent)),
            ExprKind::List(items) => {
                if items.is_empty() {
                    return "[]".into();
                }
                if self.is_multiline(expr) {
                    let mut out = String::from("[\n");
                    for item in items {
                        out.push_str(&pad(indent + 2));
                        out.push_str(&self.followed(item, indent + 2));
                        out.push_str(",\n");
                    }
                    out.push_str(&pad(indent));
                    out.push(']');
                    out
                } else {
                    let printed: Vec<String> = items
                        .iter()
                        .map(|item| self.followed(item, indent))
                        .collect();
                    format!("[{}]", printed.join(", "))
                }
            }
            ExprKind::Object(items) => {
                if items.is_empty() {
                    return "{}".into();
                }
                let keys: Vec<String> = items
                    .iter()
                    .map(|item| self.object_key(&item.key, indent))
                    .collect();
                if self.is_multiline(expr) {
                    let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
                    let mut out = String::from("{\n");
                    for (item, key) in items.iter().zip(&keys) {
                        out.push_str(&pad(indent + 2));
                        out.push_str(key);
                        out.push_str(&" ".repeat(width - key.chars().count()));
                        out.push_str(" = ");
                        out.push_str(&self.expr(&item.value, indent + 2));
                        out.push('\n');
                    }
                    out.push_str(&pad(indent));
                    out.push('}');
                    out
                } else {
                    let printed: Vec<String> = items
                        .iter()
                        .zip(&keys)
                        .map(|(item, key)| {
                            format!("{key} = {}", self.followed(&item.value, indent))
                        })
                        .collect();
                    format!("{{ {} }}", printed.join(", "))
                }
            }
            ExprKind::ForList {
                intro,
                value,
                condition,
            } => {
                let mut out = format!(
                    "[{} {}",
                    self.for_intro(intro, indent),
                    self.followed(value, indent)
                );
                if let Some(condition) = condition {
                    out.push_str(" if ");
                    out.push_str(&self.followed(condition, indent));
                }
                out.push(']');
                out
            }
            ExprKind::ForObject {
                intro,
                key,
                value,
                group,
                condition,
            } => {
                let mut out = format!(
                    "{{ {} {} => {}",
                    self.for_intro(intro, indent),
                    self.followed(key, indent),
                    self.followed(value, indent)
                );
                if *group {
                    out.push_str("...");
                }
                if let Some(condition) = condition {
                    out.push_str(" if ");
                    out.push_str(&self.followed(condition, indent));
                }
                out.push_str(" }");
                out
            }
        }
    }

    fn for_intro(&mut self, intro: &ForIntro, indent: usize) -> String {
        let names = match &intro.key_var {
            Some(key) => format!("{}, {}", key.name, intro.value_var.name),
            None => intro.value_var.name.clone(),
        };
        format!(
            "for {names} in {} :",
            self.followed(&intro.collection, indent)
        )
    }

    fn object_key(&mut self, key: &ObjectKey, indent: usize) -> String {
        match key {
            ObjectKey::Name(ident) => ident.name.clone(),
            ObjectKey::Expr(expr) => self.expr(expr, indent),
        }
    }
}
