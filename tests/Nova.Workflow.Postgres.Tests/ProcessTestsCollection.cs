using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// Tests that start OS processes run alone: their load would starve the lease timing of the others.
/// (xunit honours a collection definition only in the assembly of the tests that use it.)
/// </summary>
[CollectionDefinition(Redis.Tests.ProcessTests.Name, DisableParallelization = true)]
public sealed class ProcessTestsCollection;
