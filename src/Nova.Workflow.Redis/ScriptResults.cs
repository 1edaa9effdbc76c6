using System.Globalization;
using Nova.Workflow.Storage;
using StackExchange.Redis;

namespace Nova.Workflow.Redis;

/// <summary>Reads what the state scripts return: {code, done, total, status, events, jobs, extra, now} (the batch scripts: <see cref="Next"/>).</summary>
internal static class ScriptResults
{
    private static readonly string[] EventNames =
    [
        EventTypes.ExecutionStarted, EventTypes.NodeQueued, EventTypes.NodeStarted, EventTypes.NodeSucceeded,
        EventTypes.NodeRetrying, EventTypes.NodeFailed, EventTypes.NodeSkipped, EventTypes.NodeCanceled,
        EventTypes.NodeAwaitingReview, EventTypes.ExecutionPaused, EventTypes.ExecutionSucceeded,
        EventTypes.ExecutionFailed, EventTypes.ExecutionCanceled, EventTypes.ExecutionResumed,
    ];

    /// <summary>
    /// The short reply of a transition that says nothing but that it happened (code 0, no events, no jobs, nothing extra):
    /// a completion of a leaf. The batch scripts send it as one value, -1.
    /// </summary>
    public static readonly RedisResult[] Accepted = [RedisResult.Create(0)];

    /// <summary>
    /// The short reply of a claim's start of a node without parents, of the execution the start before it in the same reply
    /// started (whose workflow input, name and version it shares): -2.
    /// </summary>
    public static readonly RedisResult[] SameStart = [RedisResult.Create(0)];

    public static int Code(RedisResult[] result) => (int)result[0];

    /// <summary>
    /// The next reply of a batch script (claim, complete_many, create_many), read from <paramref name="flat"/> at
    /// <paramref name="at"/>, which moves past it. Those scripts answer with one flat list (result() in prelude.lua): per
    /// transition its length, then code, done, total, status, now, the event count and events, the job count and jobs, then
    /// the extra values (a start's: input, workflow, version, the parents' outputs as a count and values, then any more).
    /// Returned in the shape the other scripts answer with; an empty array for a length of 0, and <see cref="Accepted"/> or
    /// <see cref="SameStart"/> for the short forms (-1, -2).
    /// </summary>
    public static RedisResult[] Next(RedisResult[] flat, ref int at)
    {
        var length = (int)flat[at];
        if (length < 0)
        {
            at++;
            return length == -2 ? SameStart : Accepted;
        }

        var start = at + 1;
        var end = start + length;
        at = end;
        if (length < 7)
        {
            return flat[start..end];
        }

        var events = (int)flat[start + 5];
        var jobsAt = start + 6 + events;
        var jobs = (int)flat[jobsAt];
        var x = jobsAt + 1 + jobs;
        RedisResult[] extra = [];
        if (x < end)
        {
            var parents = (int)flat[x + 3];
            var rest = x + 4 + parents;
            extra = new RedisResult[4 + end - rest];
            Array.Copy(flat, x, extra, 0, 3);
            extra[3] = RedisResult.Create(flat[(x + 4)..rest]);
            Array.Copy(flat, rest, extra, 4, end - rest);
        }

        return
        [
            flat[start], flat[start + 1], flat[start + 2], flat[start + 3],
            RedisResult.Create(flat[(start + 6)..jobsAt]), RedisResult.Create(flat[(jobsAt + 1)..x]), RedisResult.Create(extra), flat[start + 4],
        ];
    }

    public static bool IsFull(RedisResult[] result) => result.Length >= 8;

    public static ExecutionStatus? Status(RedisResult[] result) =>
        IsFull(result) && (int)result[3] >= 0 ? (ExecutionStatus)(int)result[3] : null;

    public static RedisResult[] Extra(RedisResult[] result) => (RedisResult[])result[6]!;

    public static DateTimeOffset Now(RedisResult[] result) => DateTimeOffset.FromUnixTimeMilliseconds((long)result[7]);

    public static StoreTransition Transition(RedisResult[] result, Guid executionId, string? traceParent)
    {
        if (!IsFull(result))
        {
            return StoreTransition.None;
        }

        var now = Now(result);
        // The scripts return events only when the transition canceled a node (watchers get them through PUBLISH).
        var flat = (RedisResult[])result[4]!;
        IReadOnlyList<WorkflowEvent> events = flat.Length == 0 ? [] : ParseEvents(flat, executionId, new ExecutionProgress((int)result[1], (int)result[2]), now);
        var raw = (RedisResult[])result[5]!;
        var jobs = raw.Length == 0 ? (IReadOnlyList<Job>)[] : new Job[raw.Length / 5];
        for (var k = 0; k < raw.Length; k += 5)
        {
            var notBefore = (long)raw[k + 2];
            ((Job[])jobs)[k / 5] = new Job(
                executionId,
                (string)raw[k]!,
                (int)raw[k + 1],
                (string)raw[k + 3]!,
                (int)raw[k + 4],
                notBefore > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(notBefore) : null,
                traceParent);
        }

        return events.Count == 0 && jobs.Count == 0 ? StoreTransition.None : new StoreTransition(jobs, events);
    }

    public static List<WorkflowEvent> ParseEvents(RedisResult[] flat, Guid executionId, ExecutionProgress progress, DateTimeOffset now)
    {
        var events = new List<WorkflowEvent>(flat.Length / 4);
        for (var k = 0; k < flat.Length; k += 4)
        {
            var node = (string?)flat[k + 1];
            var message = (string?)flat[k + 3];
            events.Add(new WorkflowEvent(
                EventNames[(int)flat[k]],
                executionId,
                string.IsNullOrEmpty(node) ? null : node,
                (int)flat[k + 2],
                now,
                progress,
                string.IsNullOrEmpty(message) ? null : message));
        }

        return events;
    }

    public static string Ms(DateTimeOffset time) => time.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    public static string Ms(TimeSpan span) => ((long)span.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
}
