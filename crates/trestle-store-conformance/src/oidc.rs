//! Pending OpenID Connect logins (part of the external suite): a pending
//! login is taken once, by its own key, and not after it expired.

use trestle_store::Store;
use trestle_store::oidc::{LoginFlow, PendingLogin};

const T0: i64 = 1_700_000_000_000;

fn pending(flow: LoginFlow, expires_at: i64) -> PendingLogin {
    PendingLogin {
        provider: "campus".into(),
        flow,
        nonce: "nonce-1".into(),
        pkce: "verifier-1".into(),
        redirect_uri: "http://127.0.0.1:5050/callback".into(),
        next: Some("/ui/jobs".into()),
        created_at: T0,
        expires_at,
    }
}

/// The check.
pub async fn taken_once(s: &dyn Store) {
    let p = pending(LoginFlow::Portal, T0 + 600_000);
    s.put_oidc_login("k1", &p).await.unwrap();
    let cli = PendingLogin {
        next: None,
        ..pending(LoginFlow::Cli, T0 + 600_000)
    };
    s.put_oidc_login("k2", &cli).await.unwrap();
    assert!(s.take_oidc_login("other", T0 + 1).await.unwrap().is_none());
    assert_eq!(s.take_oidc_login("k1", T0 + 1).await.unwrap(), Some(p));
    assert!(
        s.take_oidc_login("k1", T0 + 2).await.unwrap().is_none(),
        "a state is used once"
    );
    assert_eq!(s.take_oidc_login("k2", T0 + 3).await.unwrap(), Some(cli));
    // Expired: not returned, and gone.
    s.put_oidc_login("k3", &pending(LoginFlow::Portal, T0 + 10))
        .await
        .unwrap();
    assert!(s.take_oidc_login("k3", T0 + 10).await.unwrap().is_none());
    // Expired rows are deleted when a new login begins.
    s.put_oidc_login("k4", &pending(LoginFlow::Portal, T0 + 10))
        .await
        .unwrap();
    let later = PendingLogin {
        created_at: T0 + 20,
        ..pending(LoginFlow::Portal, T0 + 600_000)
    };
    s.put_oidc_login("k5", &later).await.unwrap();
    assert!(s.take_oidc_login("k4", T0 + 5).await.unwrap().is_none());
}
