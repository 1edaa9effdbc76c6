using System.Collections;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Redis;

/// <summary>
/// The jobs a fused create put in their queues: its plan's roots at attempt 1, due now. Made from the plan when read, not
/// sent back by the script: the dispatcher skips enqueued jobs, so a wide workflow's thousands are usually never made.
/// </summary>
internal sealed class RootJobs(ExecutionPlan plan, Guid executionId, string? traceParent) : IReadOnlyList<Job>
{
    public int Count => plan.Roots.Length;

    public Job this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
            var node = plan.Nodes[plan.Roots[index]];
            return new Job(executionId, node.Id, 1, node.Queue, node.Priority, null, traceParent);
        }
    }

    public IEnumerator<Job> GetEnumerator()
    {
        for (var k = 0; k < Count; k++)
        {
            yield return this[k];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
