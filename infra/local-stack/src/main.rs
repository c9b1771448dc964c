//! `cargo run -p local-stack`: the whole product on 127.0.0.1:3000.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shared::wiring::telemetry::init_local();
    let port: u16 = std::env::var("PORT").ok().map(|p| p.parse()).transpose()?.unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let booted = local_stack::boot(&listener, |k| std::env::var(k).ok()).await?;
    println!("{}", booted.banner);
    local_stack::serve(listener, booted.stack).await?;
    Ok(())
}
