//! The CryptoProvider trap (DESIGN.md section 7): kube with rustls and reqwest with rustls must be
//! buildable in one process without "Could not automatically determine the process-level
//! CryptoProvider" panics.

use std::time::Duration;

const DUMMY_KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: dummy
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: false}
users:
- name: dummy
  user: {token: not-a-real-token}
contexts:
- name: dummy
  context: {cluster: dummy, user: dummy, namespace: default}
current-context: dummy
"#;

#[tokio::test]
async fn kube_and_reqwest_clients_coexist() {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(DUMMY_KUBECONFIG).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config from kubeconfig");
    assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
    let kube_client = kube::Client::try_from(config).expect("kube client builds");
    assert_eq!(kube_client.default_namespace(), "default");

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client builds");
    let prom = prometheus_http_query::Client::from(http.clone(), "https://127.0.0.1:9090")
        .expect("prometheus client builds on our reqwest client");
    assert_eq!(prom.base_url().as_str(), "https://127.0.0.1:9090/");

    // A second kube client after reqwest initialised its TLS stack must work too.
    let again = kube::config::Kubeconfig::from_yaml(DUMMY_KUBECONFIG).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(again, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("second kube client builds");
}
