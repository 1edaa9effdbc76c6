using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>Tests that start OS processes run alone: their load would starve the lease timing of the others.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessTests
{
    public const string Name = "process tests";
}
