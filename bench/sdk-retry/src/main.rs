//! One RegisterUsage with the SDK's default retry policy (bench only; see Cargo.toml). Exit 0 when AWS
//! (the emulator) answered, 81 when the SDK gave up, as the gate's "cannot verify" status.
#![forbid(unsafe_code)]

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(http) = mpgate::aws::tls::http_client(mpgate::aws::proxy::Settings::direct()) else {
        std::process::exit(82);
    };
    // aws-config's defaults: environment region and credentials (ECS here), AWS_ENDPOINT_URL, and
    // RetryConfig::standard() (3 attempts).
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).load().await;
    let client = aws_sdk_marketplacemetering::Client::new(&sdk);
    let code = match client
        .register_usage()
        .product_code("8f3kq2demopaid0mpgate01")
        .public_key_version(2)
        .nonce("fleet-baseline")
        .send()
        .await
    {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("sdk-retry: {}", aws_sdk_marketplacemetering::error::DisplayErrorContext(&e));
            81
        }
    };
    std::process::exit(code);
}
