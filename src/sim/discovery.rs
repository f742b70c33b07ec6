//! Discovery documents: /version, /api, /apis, /api/v1, /apis/<group>, /apis/<group>/<version>,
//! shaped like kube-apiserver v1.36's.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// `/version`.
pub fn version() -> Value {
    json!({"major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36", "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "35", "gitVersion": "v1.36.2", "gitCommit": "serin-sim", "gitTreeState": "clean",
        "buildDate": "2026-11-01T00:00:00Z", "goVersion": "go1.26.6", "compiler": "gc", "platform": "linux/amd64"})
}

/// `/api`.
pub fn api(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

/// Groups in serving order with their versions (preferred first).
fn groups(types: &[ResourceType]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) if !versions.contains(&t.version) => {
                versions.push(t.version.clone())
            }
            Some(_) => {}
            None => out.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    out
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn apis(types: &[ResourceType]) -> Value {
    let gs: Vec<Value> = groups(types).iter().map(|(g, v)| group_doc(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// `/apis/<group>`, None when the group is unknown.
pub fn group(types: &[ResourceType], name: &str) -> Option<Value> {
    let (g, v) = groups(types).into_iter().find(|(g, _)| g == name)?;
    let mut doc = group_doc(&g, &v);
    let obj = doc.as_object_mut()?;
    let mut out = serde_json::Map::new();
    out.insert("kind".into(), json!("APIGroup"));
    out.insert("apiVersion".into(), json!("v1"));
    out.append(obj);
    Some(Value::Object(out))
}

/// `/api/v1` or `/apis/<group>/<version>`, None when nothing is served there.
pub fn resources(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let list: Vec<Value> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(|t| t.discovery())
        .collect();
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut doc = json!({"kind": "APIResourceList", "groupVersion": gv, "resources": list});
    if !group.is_empty() {
        doc["apiVersion"] = json!("v1");
    }
    Some(doc)
}

/// Aggregated discovery (`Accept: ...;as=APIGroupDiscoveryList`) for `/apis` (groups) or `/api`
/// (core): every group, version and resource in one document.
pub fn aggregated(types: &[ResourceType], core: bool) -> Value {
    let mut items = Vec::new();
    let list: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(types)
    };
    for (group, versions) in list {
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = types
                    .iter()
                    .filter(|t| t.group == group && t.version == *v)
                    .map(aggregated_resource)
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        let mut item = json!({"metadata": {}, "versions": vs});
        if !group.is_empty() {
            item["metadata"]["name"] = json!(group);
        }
        items.push(item);
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let kind_of = |kind: &str| {
        if t.builtin.is_some() {
            json!({"group": "", "version": "", "kind": kind})
        } else {
            json!({"group": t.group, "version": t.version, "kind": kind})
        }
    };
    let main = &t.discovery()[0];
    let mut r = json!({"resource": t.plural, "responseKind": kind_of(&t.kind), "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular, "verbs": main["verbs"]});
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    let mut subs = Vec::new();
    if t.scale {
        subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
    }
    if t.status {
        subs.push(json!({"subresource": "status", "responseKind": kind_of(&t.kind), "verbs": ["get", "patch", "update"]}));
    }
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_root(types: &[ResourceType]) -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<String> = types
        .iter()
        .map(|t| {
            if t.group.is_empty() {
                "api/v1".to_string()
            } else {
                format!("apis/{}/{}", t.group, t.version)
            }
        })
        .collect();
    gvs.dedup();
    for gv in gvs {
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=serin")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<gv>`: enough of the document for kubectl to see that every resource's PATCH
/// supports `fieldValidation` (so it validates server-side instead of downloading OpenAPI v2),
/// plus the custom resources' schemas.
pub fn openapi_gv(types: &[ResourceType], gv: &str) -> Option<Value> {
    let (group, version) = match gv.strip_prefix("apis/") {
        Some(rest) => rest.split_once('/')?,
        None if gv == "api/v1" => ("", "v1"),
        None => return None,
    };
    let mut paths = serde_json::Map::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/{version}")
        };
        let item = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let params = json!([{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}, {"name": "force", "in": "query", "schema": {"type": "boolean"}}]);
        paths.insert(item, json!({"patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", "parameters": params,
            "responses": {"200": {"description": "OK"}}}}));
    }
    if paths.is_empty() {
        return None;
    }
    // Custom resources carry their schema, so `kubectl explain` shows the field docs.
    let mut schemas = serde_json::Map::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        if let Some(s) = &t.schema {
            let mut s = Value::clone(s);
            s["x-kubernetes-group-version-kind"] =
                json!([{"group": group, "version": version, "kind": t.kind}]);
            let reversed: Vec<&str> = group.split('.').rev().collect();
            schemas.insert(format!("{}.{version}.{}", reversed.join("."), t.kind), s);
        }
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.36.2"}, "paths": paths, "components": {"schemas": schemas}}),
    )
}
