//! The cgroup parent the tests share (`/carte-test`) is the suite's to remove, since the runtime, like runc, keeps
//! parents it did not choose: it goes with the last test context, so no test run leaves it in the cgroup tree.
//! One test alone in its binary, so that no other context of this process is alive when it checks.

use carte_tests::cgroups::{hierarchies, TEST_PARENT};
use carte_tests::*;

fn parents_left() -> Vec<std::path::PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.mount.join(TEST_PARENT))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn the_shared_cgroup_parent_goes_with_the_last_context() {
    {
        let Some(ctx) = Ctx::new() else { return };
        let id = ctx.id("parent");
        let mut b = ctx.bundle();
        b.cgroups_path(&format!("/{TEST_PARENT}/{id}"));
        b.args(&["true"]);
        ctx.rt.run(&id, &b, &[]).ok();
        assert!(
            !parents_left().is_empty(),
            "the runtime made no /{TEST_PARENT} parent: nothing to test"
        );
    }
    assert_eq!(parents_left(), Vec::<std::path::PathBuf>::new());
}
