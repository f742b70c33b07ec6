//! CEL for ValidatingAdmissionPolicies. kube's CEL support (`kube::core::cel`, the kube-cel crate)
//! evaluates CRD rules with only `self` bound, and its `VapEvaluator` words failures its own way,
//! so this uses the underlying `cel` crate directly (through kube's re-export, so the versions
//! match) with kube-cel's Kubernetes function library registered, and binds what kube-apiserver
//! binds for a policy: `object`, `oldObject` (null on CREATE), `request`, `namespaceObject` and
//! `variables`. Messages follow apiserver/pkg/admission/plugin/cel (`compilation error: ...`,
//! `expression '<expr>' resulted in error: ...`).
//!
//! Not modelled: type checking (a non-bool result is a failed validation, as a dyn-typed result
//! is in kube-apiserver), `params`, `authorizer`, cost limits, and field-name escaping (keys are
//! bound as they are; reach odd ones with `object.metadata.labels['app.kubernetes.io/name']`).
//! A panic inside the third-party parser or interpreter becomes a compilation or evaluation
//! error instead of taking a connection down; the caller runs this on a thread with a large
//! stack because parsing and evaluation recurse with the expression's depth.
//! Must not import the controller or the decision core.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use kube::core::cel::KubeCelExt;
use kube::core::cel::cel::objects::{Key, Map};
use kube::core::cel::cel::{Context, Program, Value as Cel};
use serde_json::Value;

/// Nesting (brackets, and operators chained without brackets count too) beyond which an
/// expression is refused, like cel-go's parser recursion limit (250): parsing and evaluation
/// recurse on it, and a stack overflow would abort the whole process.
pub const MAX_DEPTH: usize = 250;

/// Stack for evaluations: parsing and evaluation recurse once or more per nesting level, and
/// [`MAX_DEPTH`] levels need more than a runtime worker's 2 MiB.
const STACK: usize = 64 * 1024 * 1024;

/// Runs `f` on a scoped thread with a large stack; None if the thread could not be started or
/// `f` panicked.
pub fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("sim-cel".into())
            .stack_size(STACK)
            .spawn_scoped(s, f)
            .ok()?
            .join()
            .ok()
    })
}

/// What an expression came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It evaluated to `true`.
    True,
    /// It evaluated to anything else (false, or a non-bool).
    False,
    /// It did not compile or failed at runtime; the text is kube-apiserver's.
    Error(String),
}

/// A JSON value as CEL sees it (integers as int, larger ones as uint, other numbers as double).
pub fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<Key, Cel> = m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// How deeply an expression nests: open brackets plus binary operators in a row (a long chain
/// `a + b + c ...` parses into a tree as deep as it is long).
pub fn depth(expr: &str) -> usize {
    let (mut open, mut max, mut chain) = (0usize, 0usize, 0usize);
    for c in expr.chars() {
        match c {
            '(' | '[' | '{' => open += 1,
            ')' | ']' | '}' => open = open.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '&' | '|' | '<' | '>' | '=' | '!' | '?' | '.' => {
                chain += 1
            }
            _ => {}
        }
        max = max.max(open + chain);
    }
    max
}

/// Compiles an expression, with kube-apiserver's wording for failures.
pub fn compile(expr: &str) -> Result<Program, String> {
    if depth(expr) > MAX_DEPTH {
        return Err(format!(
            "compilation error: compilation failed: expression recursion limit exceeded: {MAX_DEPTH}"
        ));
    }
    match catch_unwind(AssertUnwindSafe(|| Program::compile(expr))) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(format!("compilation error: compilation failed: {e}")),
        Err(_) => Err("compilation error: compilation failed: the CEL parser gave up".into()),
    }
}

/// The variables of one evaluation.
pub struct Env {
    ctx: Context<'static>,
    variables: HashMap<Key, Cel>,
}

impl Env {
    /// An environment with `object`, `oldObject`, `request` and (namespaced requests)
    /// `namespaceObject` bound.
    pub fn new(object: &Value, old: Option<&Value>, request: &Value, ns: Option<&Value>) -> Env {
        let mut ctx = Context::default();
        ctx.register_all();
        ctx.add_variable_from_value("object", to_cel(object));
        ctx.add_variable_from_value("oldObject", old.map_or(Cel::Null, to_cel));
        ctx.add_variable_from_value("request", to_cel(request));
        if let Some(ns) = ns {
            ctx.add_variable_from_value("namespaceObject", to_cel(ns));
        }
        Env {
            ctx,
            variables: HashMap::new(),
        }
    }

    /// Evaluates a policy's `variables` in order (each may use the earlier ones) and binds them
    /// as `variables.<name>`. kube-apiserver evaluates them lazily; a variable that fails here is
    /// left unbound, so only expressions that use it fail (with "no such key").
    pub fn bind_variables(&mut self, vars: &[(String, String)]) {
        for (name, expr) in vars {
            if let Ok(Ok(v)) = compile(expr).map(|p| self.run(&p)) {
                self.variables
                    .insert(Key::String(Arc::new(name.clone())), v);
                let map = Cel::Map(Map {
                    map: Arc::new(self.variables.clone()),
                });
                self.ctx.add_variable_from_value("variables", map);
            }
        }
    }

    fn run(&self, program: &Program) -> Result<Cel, String> {
        match catch_unwind(AssertUnwindSafe(|| program.execute(&self.ctx))) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the CEL interpreter gave up".into()),
        }
    }

    /// Evaluates a validation (or match condition) expression.
    pub fn check(&self, expr: &str) -> Outcome {
        let program = match compile(expr) {
            Ok(p) => p,
            Err(e) => return Outcome::Error(e),
        };
        match self.run(&program) {
            Ok(Cel::Bool(true)) => Outcome::True,
            Ok(_) => Outcome::False,
            Err(e) => Outcome::Error(format!("expression '{expr}' resulted in error: {e}")),
        }
    }

    /// Evaluates a `messageExpression`; None when it fails, is not a string, is blank, has a
    /// newline or is too long (kube-apiserver then falls back to `message`).
    pub fn message(&self, expr: &str) -> Option<String> {
        let program = compile(expr).ok()?;
        match self.run(&program) {
            Ok(Cel::String(s)) => {
                let s = s.trim();
                (!s.is_empty() && !s.contains('\n') && s.len() <= 5 * 1024).then(|| s.to_string())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(object: Value, old: Option<Value>) -> Env {
        Env::new(&object, old.as_ref(), &json!({"operation": "UPDATE"}), None)
    }

    #[test]
    fn object_old_object_and_request_are_bound() {
        let e = env(
            json!({"spec": {"replicas": 3}, "metadata": {"labels": {"app.kubernetes.io/name": "web"}}}),
            Some(json!({"spec": {"replicas": 1}})),
        );
        assert_eq!(
            e.check("object.spec.replicas > oldObject.spec.replicas"),
            Outcome::True
        );
        assert_eq!(e.check("object.spec.replicas <= 2"), Outcome::False);
        assert_eq!(e.check("request.operation == 'UPDATE'"), Outcome::True);
        assert_eq!(
            e.check("object.metadata.labels['app.kubernetes.io/name'] == 'web'"),
            Outcome::True
        );
        assert_eq!(
            e.check("'x'.lowerAscii() == 'x'"),
            Outcome::True,
            "Kubernetes functions"
        );
        assert_eq!(
            e.check("object.spec.replicas"),
            Outcome::False,
            "a non-bool fails the check"
        );
        let created = env(json!({"spec": {}}), None);
        assert_eq!(created.check("oldObject == null"), Outcome::True);
    }

    #[test]
    fn failures_are_worded_like_kube_apiserver() {
        let e = env(json!({"spec": {}}), None);
        match e.check("object.spec.missing > 1") {
            Outcome::Error(m) => assert!(
                m.starts_with("expression 'object.spec.missing > 1' resulted in error: "),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        match e.check("object.spec.(") {
            Outcome::Error(m) => assert!(
                m.starts_with("compilation error: compilation failed: "),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        let deep = format!("{}true{}", "(".repeat(300), ")".repeat(300));
        assert!(matches!(e.check(&deep), Outcome::Error(m) if m.contains("recursion limit")));
    }

    #[test]
    fn the_deepest_allowed_expressions_fit_the_stack() {
        // The parser refuses deep bracket nesting itself (a compilation error); long operator
        // chains parse into trees as deep as they are long and are evaluated recursively.
        let nested = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        let chain = format!("1{} == {}", " + 1".repeat(MAX_DEPTH - 2), MAX_DEPTH - 1);
        let negations = format!("{}true", "!".repeat(MAX_DEPTH));
        let got = on_big_stack(|| {
            let e = env(json!({}), None);
            (e.check(&nested), e.check(&chain), e.check(&negations))
        });
        let (nested, chain, _) = got.expect("evaluated without overflowing the stack");
        assert!(
            matches!(nested, Outcome::True | Outcome::Error(_)),
            "{nested:?}"
        );
        assert_eq!(chain, Outcome::True);
    }

    #[test]
    fn variables_and_message_expressions() {
        let mut e = env(json!({"spec": {"replicas": 3}}), None);
        e.bind_variables(&[
            ("r".into(), "object.spec.replicas".into()),
            ("big".into(), "variables.r > 2".into()),
        ]);
        assert_eq!(e.check("variables.big"), Outcome::True);
        assert_eq!(
            e.message("'replicas: ' + string(variables.r)").as_deref(),
            Some("replicas: 3")
        );
        assert_eq!(e.message("'  '"), None);
        assert_eq!(e.message("1"), None);
    }
}
