using System.Threading.Channels;
using Nova.Workflow.Execution;
using Xunit;

namespace Nova.Workflow.Tests.Execution;

public sealed class ExecutionEventHubTests
{
    private static WorkflowEvent Event(string type, Guid id, string? node = null) => new(type, id, node, 1, DateTimeOffset.UnixEpoch, default);

    [Fact]
    public void A_waiter_for_the_outcome_gets_the_end_alone_and_a_watcher_gets_everything()
    {
        var hub = new ExecutionEventHub();
        var id = Guid.NewGuid();
        var all = Channel.CreateUnbounded<WorkflowEvent>();
        var end = Channel.CreateUnbounded<WorkflowEvent>();
        using (hub.Subscribe(id, all.Writer))
        using (hub.Subscribe(id, end.Writer, terminalOnly: true))
        {
            Assert.True(hub.HasWatchers);
            Assert.True(hub.HasEventWatchers);
            hub.Publish([Event(EventTypes.NodeStarted, id, "a"), Event(EventTypes.NodeSucceeded, id, "a"), Event(EventTypes.ExecutionSucceeded, id)]);
            hub.Publish([Event(EventTypes.NodeStarted, Guid.NewGuid(), "other")]);
        }

        Assert.False(hub.HasWatchers);
        Assert.Equal([EventTypes.NodeStarted, EventTypes.NodeSucceeded, EventTypes.ExecutionSucceeded], Drain(all.Reader).Select(e => e.Type));
        Assert.Equal([EventTypes.ExecutionSucceeded], Drain(end.Reader).Select(e => e.Type));
    }

    [Fact]
    public void Only_waiters_for_the_outcome_ask_for_no_progress_reports()
    {
        var hub = new ExecutionEventHub();
        using var waiter = hub.Subscribe(Guid.NewGuid(), Channel.CreateUnbounded<WorkflowEvent>().Writer, terminalOnly: true);
        Assert.True(hub.HasWatchers);
        Assert.False(hub.HasEventWatchers);
    }

    private static List<WorkflowEvent> Drain(ChannelReader<WorkflowEvent> reader)
    {
        var events = new List<WorkflowEvent>();
        while (reader.TryRead(out var e))
        {
            events.Add(e);
        }

        return events;
    }
}
