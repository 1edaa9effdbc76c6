namespace Nova.Workflow;

/// <summary>
/// When a node may run given the outcomes of its incoming edges (Airflow's vocabulary).
/// Rules are evaluated once every parent has reached a final state; an edge whose condition
/// was false, or whose parent was skipped, counts as skipped.
/// </summary>
public enum TriggerRule
{
    /// <summary>Run when every incoming edge succeeded (the default); otherwise the node is skipped.</summary>
    AllSucceeded = 0,

    /// <summary>Run once every parent is done, whatever its outcome.</summary>
    AllDone = 1,

    /// <summary>Run when at least one incoming edge succeeded.</summary>
    AnySucceeded = 2,

    /// <summary>Run when at least one parent failed (error-handling branches).</summary>
    AnyFailed = 3,

    /// <summary>Run when no parent failed; skipped parents are allowed.</summary>
    NoneFailed = 4,
}

/// <summary>What an execution does when one of its nodes fails for good.</summary>
public enum FailureMode
{
    /// <summary>
    /// The execution fails at once: nodes that have not started are canceled and running
    /// handlers are signalled through their cancellation tokens (the default).
    /// </summary>
    FailFast = 0,

    /// <summary>
    /// Independent branches run to completion and children of the failed node follow their
    /// trigger rules (so <see cref="TriggerRule.AnyFailed"/> handlers can react). The execution
    /// ends Failed if any node failed.
    /// </summary>
    CompleteBranches = 1,
}
