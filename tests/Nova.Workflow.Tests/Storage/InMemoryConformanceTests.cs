using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;

namespace Nova.Workflow.Tests.Storage;

/// <summary>The provider conformance suite on the in-memory provider.</summary>
public sealed class InMemoryConformanceTests : ConformanceTests
{
    protected override ValueTask<IStorageHandle> CreateStorageAsync() => new(new InMemoryStorageHandle());

    private sealed class InMemoryStorageHandle : IStorageHandle
    {
        private readonly InMemoryJobQueue _queue;
        private readonly InMemoryStateStore _store;

        public InMemoryStorageHandle()
        {
            _queue = new(TimeProvider.System);
            _store = new(TimeProvider.System, _queue);
        }

        public ProviderCapabilities Capabilities => ProviderCapabilities.EagerDispatch;

        public void Configure(NovaWorkflowBuilder builder) => builder.UseStorage(_ => _store, _ => _queue);

        // The in-memory queue holds objects, not bytes: the closest poison is a job for nothing that exists.
        public ValueTask InjectPoisonJobAsync(IJobQueue queue, string queueName, CancellationToken cancellationToken) =>
            queue.EnqueueAsync([new Job(Guid.CreateVersion7(), "ghost", 1, queueName, 5)], cancellationToken);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
