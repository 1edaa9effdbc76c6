using Microsoft.Extensions.Logging;

namespace Nova.Workflow.Diagnostics;

/// <summary>Source-generated log messages with stable event ids. Ids only, never payloads.</summary>
internal static partial class Log
{
    [LoggerMessage(1000, LogLevel.Information, "Execution {ExecutionId} of workflow {Workflow} v{Version} started")]
    public static partial void ExecutionStarted(ILogger logger, Guid executionId, string workflow, int version);

    [LoggerMessage(1001, LogLevel.Debug, "Node {NodeId} of execution {ExecutionId} attempt {Attempt} started on {WorkerId}")]
    public static partial void NodeStarted(ILogger logger, string nodeId, Guid executionId, int attempt, string workerId);

    [LoggerMessage(1002, LogLevel.Warning, "Node {NodeId} of execution {ExecutionId} attempt {Attempt} failed ({ErrorClass}): {ErrorType}")]
    public static partial void NodeFailed(ILogger logger, string nodeId, Guid executionId, int attempt, ErrorClass errorClass, string errorType);

    [LoggerMessage(1003, LogLevel.Warning, "Node {NodeId} of execution {ExecutionId} passed its soft time limit of {Limit}; its token was cancelled")]
    public static partial void SoftTimeLimit(ILogger logger, string nodeId, Guid executionId, TimeSpan limit);

    [LoggerMessage(1004, LogLevel.Error, "Node {NodeId} of execution {ExecutionId} passed its hard time limit of {Limit}; the attempt was abandoned")]
    public static partial void HardTimeLimit(ILogger logger, string nodeId, Guid executionId, TimeSpan limit);

    [LoggerMessage(1005, LogLevel.Warning, "Worker {WorkerId} lost the lease of node {NodeId} of execution {ExecutionId}; its handler was cancelled")]
    public static partial void LeaseLost(ILogger logger, string workerId, string nodeId, Guid executionId);

    [LoggerMessage(1006, LogLevel.Information, "Completion of node {NodeId} of execution {ExecutionId} attempt {Attempt} was rejected: the attempt is no longer current")]
    public static partial void CompletionRejected(ILogger logger, string nodeId, Guid executionId, int attempt);

    [LoggerMessage(1015, LogLevel.Warning, "Committing the outcome of node {NodeId} of execution {ExecutionId} failed (try {Try}); retrying while the lease is held")]
    public static partial void CompletionRetrying(ILogger logger, string nodeId, Guid executionId, int @try, Exception exception);

    [LoggerMessage(1007, LogLevel.Error, "Worker loop for queue {Queue} failed; retrying")]
    public static partial void WorkerLoopFailed(ILogger logger, string queue, Exception exception);

    [LoggerMessage(1008, LogLevel.Error, "Job for node {NodeId} of execution {ExecutionId} could not be processed; it was released")]
    public static partial void JobFailed(ILogger logger, string nodeId, Guid executionId, Exception exception);

    [LoggerMessage(1009, LogLevel.Information, "Sweeper re-enqueued {Count} stranded jobs")]
    public static partial void Swept(ILogger logger, int count);

    [LoggerMessage(1010, LogLevel.Information, "Retention removed {Count} finished executions")]
    public static partial void Purged(ILogger logger, int count);

    [LoggerMessage(1011, LogLevel.Error, "Maintenance ({Task}) failed; it will run again")]
    public static partial void MaintenanceFailed(ILogger logger, string task, Exception exception);

    [LoggerMessage(1012, LogLevel.Information, "Worker {WorkerId} released node {NodeId} of execution {ExecutionId} at shutdown")]
    public static partial void ReleasedAtShutdown(ILogger logger, string workerId, string nodeId, Guid executionId);

    [LoggerMessage(1013, LogLevel.Error, "Node {NodeId} of execution {ExecutionId} was dead-lettered: {Reason}")]
    public static partial void DeadLettered(ILogger logger, string nodeId, Guid executionId, Storage.DeadLetterReason reason);

    [LoggerMessage(1014, LogLevel.Information, "Worker {WorkerId} serving {Queues}")]
    public static partial void WorkerStarted(ILogger logger, string workerId, string queues);
}
