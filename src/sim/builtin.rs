//! Built-in kinds: decoding through k8s-openapi's types (which drops unknown fields, as the real
//! server's decoder does), the defaults kube-apiserver fills in, and the validation rules the
//! transcripts exercise (Deployment replicas/selector/container names, Service ports/clusterIP).

use serde_json::{Map, Value, json};

use super::resources::{Builtin, ResourceType};
use crate::schema::{Cause, CauseReason};

/// Decodes an object through its typed form; returns it with unknown fields dropped, and their paths.
pub fn decode(rt: &ResourceType, obj: &Value) -> Result<(Value, Vec<String>), String> {
    if let Some(message) = time_field_error(rt, obj) {
        return Err(message);
    }
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
    fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
        obj: &Value,
    ) -> Result<Value, String> {
        let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }
    let typed = match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => roundtrip::<apps::Deployment>(obj),
        ("apps", "ReplicaSet") => roundtrip::<apps::ReplicaSet>(obj),
        ("apps", "DaemonSet") => roundtrip::<apps::DaemonSet>(obj),
        ("", "Service") => roundtrip::<core::Service>(obj),
        ("", "ConfigMap") => roundtrip::<core::ConfigMap>(obj),
        ("", "Secret") => roundtrip::<core::Secret>(obj),
        ("", "Pod") => roundtrip::<core::Pod>(obj),
        ("", "Namespace") => roundtrip::<core::Namespace>(obj),
        ("", "ServiceAccount") => roundtrip::<core::ServiceAccount>(obj),
        ("coordination.k8s.io", "Lease") => {
            roundtrip::<k8s_openapi::api::coordination::v1::Lease>(obj)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            roundtrip::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy>(obj)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => roundtrip::<
            k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        >(obj),
        _ => Ok(obj.clone()),
    };
    let typed = typed.map_err(|e| {
        format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        )
    })?;
    let mut unknown = Vec::new();
    dropped(obj, &typed, "", &mut unknown);
    Ok((typed, unknown))
}

fn dropped(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => dropped(v, av, &p, out),
                    None if !v.is_null() && !is_empty_container(v) => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                dropped(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), value);
    }
}

fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    path.iter()
        .try_fold(v, |cur, k| cur.get_mut(*k))?
        .as_object_mut()
}

/// kube-apiserver labels every Namespace with its name, and gives a new one the `kubernetes`
/// finalizer and phase Active.
fn namespace_defaults(obj: &mut Value) {
    let name = obj["metadata"]["name"].clone();
    if let Some(meta) = object_at(obj, &["metadata"]) {
        set_default(meta, "labels", json!({}));
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.insert("kubernetes.io/metadata.name".into(), name);
        }
    }
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    set_default(o, "spec", json!({}));
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    set_default(o, "status", json!({}));
    if let Some(status) = o.get_mut("status").and_then(Value::as_object_mut) {
        set_default(status, "phase", json!("Active"));
    }
}

/// kube-apiserver folds the write-only `stringData` into `data` (base64, stringData wins) and
/// defaults `type` to Opaque.
fn secret_defaults(obj: &mut Value) {
    use base64::Engine;
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    set_default(o, "type", json!("Opaque"));
    let Some(Value::Object(plain)) = o.remove("stringData") else {
        return;
    };
    if !o.get("data").is_some_and(Value::is_object) {
        o.insert("data".into(), json!({}));
    }
    if let Some(data) = o.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in plain {
            let text = v.as_str().unwrap_or_default().as_bytes().to_vec();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(k, json!(encoded));
        }
    }
}

/// Fills in the defaults kube-apiserver applies to built-in kinds.
pub fn apply_defaults(rt: &ResourceType, obj: &mut Value) {
    match rt.builtin {
        Some(Builtin::Deployment) => {
            if let Some(spec) = object_at(obj, &["spec"]) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
                if spec["strategy"]["type"] == "RollingUpdate"
                    && let Some(s) = spec.get_mut("strategy").and_then(Value::as_object_mut)
                {
                    set_default(s, "rollingUpdate", json!({}));
                    if let Some(r) = s.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        set_default(r, "maxUnavailable", json!("25%"));
                        set_default(r, "maxSurge", json!("25%"));
                    }
                }
            }
            pod_template_defaults(obj);
        }
        Some(Builtin::ReplicaSet) => {
            if let Some(spec) = object_at(obj, &["spec"]) {
                set_default(spec, "replicas", json!(1));
            }
            pod_template_defaults(obj);
        }
        Some(Builtin::DaemonSet) => {
            if let Some(spec) = object_at(obj, &["spec"]) {
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            pod_template_defaults(obj);
        }
        Some(Builtin::Pod) => {
            if let Some(spec) = object_at(obj, &["spec"]) {
                pod_spec_defaults(spec);
            }
        }
        Some(Builtin::Service) => service_defaults(obj),
        _ if rt.group.is_empty() && rt.kind == "Secret" => secret_defaults(obj),
        _ if rt.group.is_empty() && rt.kind == "Namespace" => namespace_defaults(obj),
        _ if super::views::is_event(rt) => super::views::event_defaults(obj),
        _ if rt.group == "admissionregistration.k8s.io" => {
            super::admission::apply_defaults(&rt.kind, obj)
        }
        _ if rt.kind == "HorizontalPodAutoscaler" => {
            if let Some(o) = obj.as_object_mut() {
                set_default(
                    o,
                    "status",
                    json!({"currentMetrics": null, "desiredReplicas": 0}),
                );
            }
        }
        _ => {}
    }
    if matches!(
        rt.builtin,
        Some(Builtin::Deployment | Builtin::ReplicaSet | Builtin::DaemonSet)
    ) && let Some(o) = obj.as_object_mut()
    {
        set_default(o, "status", json!({}));
    }
}

fn pod_template_defaults(obj: &mut Value) {
    if let Some(spec) = object_at(obj, &["spec", "template", "spec"]) {
        pod_spec_defaults(spec);
    }
}

fn pod_spec_defaults(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let tag = image
                .rsplit('/')
                .next()
                .and_then(|last| last.split_once(':'))
                .map(|(_, t)| t.to_string());
            let latest = tag.is_none_or(|t| t == "latest") && !image.contains('@');
            set_default(c, "resources", json!({}));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(
                c,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = p.as_object_mut() {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

fn service_defaults(obj: &mut Value) {
    let Some(spec) = object_at(obj, &["spec"]) else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    if spec.get("type").and_then(Value::as_str) != Some("ExternalName") {
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    for p in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = p.as_object_mut() {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
    if let Some(o) = obj.as_object_mut() {
        set_default(o, "status", json!({"loadBalancer": {}}));
    }
}

fn invalid(field: &str, message: String) -> Cause {
    Cause {
        reason: CauseReason::Invalid,
        field: field.to_string(),
        message,
    }
}

fn rfc1123_label(s: &str) -> bool {
    let re = regex::Regex::new("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex");
    s.len() <= 63 && re.is_match(s)
}

/// Validation rules of built-in kinds (the subset Serin and the transcripts exercise).
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    match rt.builtin {
        Some(Builtin::Deployment | Builtin::ReplicaSet | Builtin::DaemonSet) => {
            workload_rules(obj, &mut causes)
        }
        Some(Builtin::Service) => service_rules(obj, old, &mut causes),
        Some(Builtin::Lease) => lease_rules(obj, &mut causes),
        _ if rt.kind == "HorizontalPodAutoscaler" => hpa_rules(obj, &mut causes),
        _ => {}
    }
    causes
}

fn lease_rules(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    if let Some(d) = spec["leaseDurationSeconds"].as_i64().filter(|d| *d <= 0) {
        causes.push(invalid(
            "spec.leaseDurationSeconds",
            format!("Invalid value: {d}: must be greater than 0"),
        ));
    }
    if let Some(t) = spec["leaseTransitions"].as_i64().filter(|t| *t < 0) {
        causes.push(invalid(
            "spec.leaseTransitions",
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
}

fn hpa_rules(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    if let Some(max) = spec["maxReplicas"].as_i64().filter(|m| *m < min) {
        causes.push(invalid(
            "spec.maxReplicas",
            format!("Invalid value: {max}: must be greater than or equal to `minReplicas`"),
        ));
    }
    for (i, m) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        let target = &m["resource"]["target"];
        if m["type"] == "Resource"
            && target["type"] == "Utilization"
            && target["averageUtilization"].is_null()
        {
            causes.push(Cause {
                reason: CauseReason::Required,
                field: format!("spec.metrics[{i}].resource.target.averageUtilization"),
                message:
                    "Required value: must set either a target raw value or a target utilization"
                        .to_string(),
            });
        }
    }
}

/// Go's error for a MicroTime/Time that does not parse, as the decoder words it.
pub fn time_field_error(rt: &ResourceType, obj: &Value) -> Option<String> {
    let fields: &[&str] = match rt.builtin {
        Some(Builtin::Lease) => &["acquireTime", "renewTime"],
        _ => return None,
    };
    fields.iter().find_map(|f| {
        let v = obj["spec"][*f].as_str()?;
        chrono::DateTime::parse_from_rfc3339(v).is_err().then(|| {
            format!("{} in version \"{}\" cannot be handled as a {}: parsing time \"{v}\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"{v}\" as \"2006\"", rt.kind, rt.version, rt.kind)
        })
    })
}

fn workload_rules(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    if let Some(r) = spec["replicas"].as_i64().filter(|r| *r < 0) {
        causes.push(invalid(
            "spec.replicas",
            format!("Invalid value: {r}: must be greater than or equal to 0"),
        ));
    }
    let selector = spec["selector"]["matchLabels"].as_object();
    let labels = spec["template"]["metadata"]["labels"].as_object();
    if let Some(sel) = selector {
        let matches = sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            let shown =
                serde_json::to_string(&spec["template"]["metadata"]["labels"]).unwrap_or_default();
            causes.push(invalid(
                "spec.template.metadata.labels",
                format!("Invalid value: {shown}: `selector` does not match template `labels`"),
            ));
        }
    }
    for (i, c) in spec["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = c["name"].as_str().unwrap_or("");
        if !rfc1123_label(name) {
            causes.push(invalid(
                &format!("spec.template.spec.containers[{i}].name"),
                format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
            ));
        }
    }
}

fn service_rules(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let headless = spec["clusterIP"].as_str() == Some("None");
    let external = spec["type"].as_str() == Some("ExternalName");
    if !headless && !external && spec["ports"].as_array().is_none_or(|p| p.is_empty()) {
        causes.push(Cause {
            reason: CauseReason::Required,
            field: "spec.ports".to_string(),
            message: "Required value".to_string(),
        });
    }
    if old.is_none()
        && let Some(ip) = spec["clusterIP"]
            .as_str()
            .filter(|ip| *ip != "None" && !ip.is_empty())
        && !ip.starts_with("10.0.")
    {
        causes.push(invalid("spec.clusterIPs", format!("Invalid value: [\"{ip}\"]: failed to allocate IP {ip}: the provided network does not match the current range")));
    }
    if let Some(old) = old {
        let (before, after) = (&old["spec"]["clusterIP"], &spec["clusterIP"]);
        if before.is_string() && after.is_string() && before != after {
            causes.push(invalid(
                "spec.clusterIPs[0]",
                format!("Invalid value: [{after}]: may not change once set"),
            ));
        }
    }
}
