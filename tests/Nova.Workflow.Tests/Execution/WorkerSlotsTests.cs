using Nova.Workflow.Execution;
using Xunit;

namespace Nova.Workflow.Tests.Execution;

public sealed class WorkerSlotsTests
{
    [Fact]
    public async Task A_taker_waits_for_a_release_once_every_slot_is_taken()
    {
        using var stop = new CancellationTokenSource();
        using var slots = new WorkerSlots(2, stop.Token);
        Assert.True(await slots.TakeAsync());
        Assert.Equal(1, slots.TakeFree(5));
        Assert.Equal(0, slots.TakeFree(5));
        var waiting = slots.TakeAsync();
        Assert.False(waiting.IsCompleted);
        slots.Release();
        Assert.True(await waiting.AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        // The released slot went to the waiter: none is free.
        Assert.Equal(0, slots.TakeFree(5));
        slots.Release(2);
        Assert.Equal(2, slots.TakeFree(5));
    }

    [Fact]
    public async Task Stopping_ends_a_wait_with_false_and_the_drain_completes_when_every_run_gave_its_slot_back()
    {
        using var stop = new CancellationTokenSource();
        using var slots = new WorkerSlots(2, stop.Token);
        Assert.True(await slots.TakeAsync());
        Assert.True(await slots.TakeAsync());
        var waiting = slots.TakeAsync();
        await stop.CancelAsync();
        Assert.False(await waiting.AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(await slots.TakeAsync());
        var drained = slots.DrainAsync();
        slots.Release();
        Assert.False(drained.IsCompleted);
        slots.Release();
        await drained.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
