//! The syntax tree. Every node carries the [`Span`] of the text it came from.
//!
//! The tree is purely syntactic: a `resource` block is a [`Block`] whose kind
//! happens to be `resource`; what blocks mean is decided in `config/`.

use super::Span;

/// A name with its span: attribute names, labels, variables, function names.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed `.infra` file.
#[derive(Debug, Clone)]
pub struct File {
    pub body: Body,
    pub comments: Vec<Comment>,
}

/// A comment, kept for the formatter.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub span: Span,
    /// The comment text as written, including `#`, `//` or `/* */`.
    pub text: String,
}

/// The inside of a file or of a block: attributes and nested blocks, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Attribute(Attribute),
    Block(Block),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Attribute(attribute) => attribute.span,
            Item::Block(block) => block.span,
        }
    }
}

/// `name = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `kind label… { body }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: Ident,
    pub labels: Vec<Label>,
    pub body: Body,
    /// From the kind to the closing brace.
    pub span: Span,
    /// The kind and labels: what diagnostics about the whole block underline.
    pub header_span: Span,
}

impl Block {
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.body.items.iter().filter_map(|item| match item {
            Item::Attribute(attribute) => Some(attribute),
            Item::Block(_) => None,
        })
    }

    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.body.items.iter().filter_map(|item| match item {
            Item::Block(block) => Some(block),
            Item::Attribute(_) => None,
        })
    }
}

/// A block label: `aws_vpc` or `"aws_vpc"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub value: String,
    pub quoted: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Number(f64),
    /// A quoted string or heredoc: literal text and interpolations.
    Template(Vec<TemplatePart>),
    List(Vec<Expr>),
    Object(Vec<ObjectItem>),
    /// A bare name: the root of a reference (`var`, `aws_vpc`, `each`, a
    /// for-expression variable …).
    Variable(Ident),
    /// `root.attr[index][*].attr`.
    Traversal {
        root: Box<Expr>,
        steps: Vec<Step>,
    },
    /// Large fields are boxed to keep every `Expr` small (64 bytes): most
    /// nodes are names and literals, and all of them pay for the largest.
    Call {
        name: Box<Ident>,
        args: Vec<Expr>,
        /// `f(a, list...)`: the last argument is expanded.
        expand_final: bool,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    ForList {
        intro: Box<ForIntro>,
        value: Box<Expr>,
        condition: Option<Box<Expr>>,
    },
    ForObject {
        intro: Box<ForIntro>,
        key: Box<Expr>,
        value: Box<Expr>,
        group: bool,
        condition: Option<Box<Expr>>,
    },
    Parenthesized(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    Literal(String),
    Interpolation(Expr),
    /// `%{ if cond }…%{ else }…%{ endif }`; `span` is the `%{ if … }`.
    If {
        condition: Expr,
        then: Vec<TemplatePart>,
        otherwise: Vec<TemplatePart>,
        span: Span,
    },
    /// `%{ for k, v in coll }…%{ endfor }`; `span` is the `%{ for … }`.
    For {
        intro: ForIntro,
        body: Vec<TemplatePart>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectItem {
    pub key: ObjectKey,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ObjectKey {
    /// `name = …`: the name is the key, never a reference.
    Name(Ident),
    /// `"quoted" = …` or `(expr) = …`.
    Expr(Expr),
}

impl ObjectKey {
    pub fn span(&self) -> Span {
        match self {
            ObjectKey::Name(ident) => ident.span,
            ObjectKey::Expr(expr) => expr.span,
        }
    }
}

/// `for k, v in collection :`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForIntro {
    /// The key (or index) variable when two names are given.
    pub key_var: Option<Ident>,
    pub value_var: Ident,
    pub collection: Box<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `.name`
    Attr(Ident),
    /// `[expr]`
    Index(Expr),
    /// `[*]`: the remaining steps apply to every element.
    Splat(Span),
}

impl Step {
    pub fn span(&self) -> Span {
        match self {
            Step::Attr(ident) => ident.span,
            Step::Index(expr) => expr.span,
            Step::Splat(span) => *span,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Negate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

impl BinaryOp {
    /// Binding power: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Equal | BinaryOp::NotEqual => 3,
            BinaryOp::Less | BinaryOp::LessEqual | BinaryOp::Greater | BinaryOp::GreaterEqual => 4,
            BinaryOp::Add | BinaryOp::Subtract => 5,
            BinaryOp::Multiply | BinaryOp::Divide | BinaryOp::Modulo => 6,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterEqual => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
        }
    }
}

impl UnaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Not => "!",
            UnaryOp::Negate => "-",
        }
    }
}
