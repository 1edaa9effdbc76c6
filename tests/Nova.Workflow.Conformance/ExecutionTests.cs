using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace Nova.Workflow.Conformance;

// Core engine behaviour (issue 2): parallelism, trigger rules, conditions, fan-in, outputs, progress, client API.
public abstract partial class ConformanceTests
{
    [Fact]
    public async Task Independent_nodes_run_in_parallel_up_to_the_worker_concurrency()
    {
        var probe = new Probe();
        var flow = Flow("wide");
        for (var i = 0; i < 6; i++)
        {
            flow.Node($"n{i}", "probe");
            probe.Hold($"n{i}");
        }

        var host = await StartAsync(probe, flow.Build(), worker: w => w.Queue("default", 3));
        var id = await host.Client.StartAsync("wide");
        await Eventually.TrueAsync(() => probe.TotalCalls == 3, "three handlers running");
        var snapshot = await host.Client.GetAsync(id);
        Assert.Equal(3, snapshot.RunningNodes.Count());
        for (var i = 0; i < 6; i++)
        {
            probe.Open($"n{i}");
        }

        Assert.Equal(ExecutionStatus.Succeeded, (await Finished(host, id)).Status);
        Assert.Equal(3, probe.MaxConcurrency);
    }

    [Fact]
    public async Task Fan_in_node_runs_exactly_once_after_all_parents_committed()
    {
        var probe = new Probe();
        var flow = Flow("fan");
        var parents = Enumerable.Range(0, 40).Select(i => $"p{i}").ToArray();
        foreach (var p in parents)
        {
            flow.Node(p, "probe");
        }

        flow.Node("join", "probe", n => n.DependsOn(parents));
        var host = await StartAsync(probe, flow.Build());
        var result = await host.Client.RunAsync("fan", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(1, probe.Calls("join"));
        Assert.All(parents, p => Assert.Equal(1, probe.Calls(p)));
        var history = await host.Client.GetHistoryAsync(result.Id);
        var joinRun = history.Single(r => r.NodeId == "join");
        Assert.All(history.Where(r => r.NodeId != "join"), r => Assert.True(r.EndedAt <= joinRun.StartedAt));
    }

    [Fact]
    public async Task Outputs_flow_to_children_and_the_result_is_the_leaf_output()
    {
        var host = await StartAsync(nova => nova
            .AddHandler<int, int>("double", (x, _, _) => ValueTask.FromResult(x * 2))
            .AddHandler<JsonElement, int>("sum", (x, ctx, _) => ValueTask.FromResult(x.GetProperty("a").GetInt32() + x.GetProperty("b").GetInt32() + ctx.WorkflowInput.GetInt32()))
            .AddWorkflow(Flow("math")
                .Node("a", "double")
                .Node("b", "double", n => n.DependsOn("a"))
                .Node("total", "sum", n => n.DependsOn("a", "b"))
                .Build()));
        var result = await host.Client.RunAsync("math", 5, timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(10 + 20 + 5, result.Output!.Value.GetInt32());
        Assert.Equal(20, result.Nodes.Single(n => n.Id == "b").Output!.Value.GetInt32());
    }

    [Fact]
    public async Task The_trace_of_the_start_reaches_every_node_through_its_job()
    {
        // The start's trace context travels in each job: the root's, and a child's however the store queues it (one of two
        // children may be handed to the worker that finished the parent, the other goes through the queue).
        using var source = new ActivitySource("Nova.Workflow.Conformance");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "Nova.Workflow" or "Nova.Workflow.Conformance",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        var seen = new ConcurrentDictionary<string, ActivityTraceId>();
        var host = await StartAsync(nova => nova
            .AddHandler("trace", (ctx, _) =>
            {
                seen[ctx.NodeId] = Activity.Current?.TraceId ?? default;
                return ValueTask.FromResult<JsonElement?>(null);
            })
            .AddWorkflow(Flow("traced")
                .Node("a", "trace")
                .Node("b", "trace", n => n.DependsOn("a"))
                .Node("c", "trace", n => n.DependsOn("a"))
                .Build()));
        ActivityTraceId trace;
        Guid id;
        using (var outer = source.StartActivity("caller")!)
        {
            trace = outer.TraceId;
            id = await host.Client.StartAsync("traced");
        }

        Assert.Equal(ExecutionStatus.Succeeded, (await Finished(host, id)).Status);
        Assert.Equal(["a", "b", "c"], seen.Keys.Order());
        Assert.All(seen.Values, t => Assert.Equal(trace, t));
    }

    [Fact]
    public async Task A_null_output_reads_as_null_in_the_result_the_snapshot_and_the_child_input()
    {
        var host = await StartAsync(nova => nova
            .AddHandler("none", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddHandler("one", (_, _) => ValueTask.FromResult<JsonElement?>(JsonSerializer.SerializeToElement(1)))
            .AddHandler<JsonElement, string>("kind", (x, _, _) => ValueTask.FromResult(x.ValueKind.ToString()))
            .AddWorkflow(Flow("nulls")
                .Node("a", "none")
                .Node("b", "one")
                .Node("c", "kind", n => n.DependsOn("a"))
                .Node("d", "none")
                .Build()));
        var result = await host.Client.RunAsync("nulls", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Null(result.Nodes.Single(n => n.Id == "a").Output);
        Assert.Equal(1, result.Output!.Value.GetProperty("b").GetInt32());
        Assert.False(result.Output!.Value.TryGetProperty("a", out _), "a is no leaf: its child c is");
        var childSaw = result.Output!.Value.GetProperty("c").GetString();
        Assert.Contains(childSaw, new[] { nameof(JsonValueKind.Null), nameof(JsonValueKind.Undefined) });
        // A leaf with a null output is in the result, as null.
        Assert.Equal(JsonValueKind.Null, result.Output!.Value.GetProperty("d").ValueKind);
    }

    [Fact]
    public async Task A_host_that_has_not_registered_the_workflow_reads_the_same_snapshot()
    {
        var host = await StartAsync(nova => nova
            .AddHandler<int, int>("double", (x, _, _) => ValueTask.FromResult(x * 2))
            .AddHandler("fail", (_, _) => throw new PermanentNodeException("boom"))
            .AddWorkflow(Flow("mixed").OnFailure(FailureMode.CompleteBranches)
                .Node("a", "double")
                .Node("b", "double", n => n.DependsOn("a"))
                .Node("bad", "fail")
                .Node("after-bad", "double", n => n.DependsOn("bad"))
                .Build()));
        var id = await host.Client.StartAsync("mixed", 4);
        var expected = await Finished(host, id);

        // A dashboard host: same storage, no workflows, no worker.
        var reader = await StartAsync(nova => nova.AddHandler("other", (_, _) => ValueTask.FromResult<JsonElement?>(null)), withWorker: false);
        var actual = await reader.Client.GetAsync(id);
        Assert.Equal(ExecutionStatus.Failed, actual.Status);
        Assert.Equal(expected.Progress, actual.Progress);
        Assert.Equal(expected.Input.GetRawText(), actual.Input.GetRawText());
        Assert.Equal(expected.Nodes.Count, actual.Nodes.Count);
        for (var i = 0; i < expected.Nodes.Count; i++)
        {
            var (e, a) = (expected.Nodes[i], actual.Nodes[i]);
            Assert.Equal((e.Id, e.Handler, e.Status, e.Attempt, e.StartedAt, e.EndedAt, e.WorkerId, e.Error), (a.Id, a.Handler, a.Status, a.Attempt, a.StartedAt, a.EndedAt, a.WorkerId, a.Error));
            Assert.Equal(e.Output?.GetRawText(), a.Output?.GetRawText());
        }

        Assert.Equal(16, actual.Nodes.Single(n => n.Id == "b").Output!.Value.GetInt32());
        Assert.Equal("boom", actual.Nodes.Single(n => n.Id == "bad").Error!.Message);
        Assert.Equal(NodeStatus.Skipped, actual.Nodes.Single(n => n.Id == "after-bad").Status);
        Assert.NotNull(actual.Nodes.Single(n => n.Id == "a").WorkerId);
    }

    [Theory]
    [InlineData(TriggerRule.AllSucceeded, NodeStatus.Skipped)]
    [InlineData(TriggerRule.AllDone, NodeStatus.Succeeded)]
    [InlineData(TriggerRule.AnySucceeded, NodeStatus.Succeeded)]
    [InlineData(TriggerRule.AnyFailed, NodeStatus.Succeeded)]
    [InlineData(TriggerRule.NoneFailed, NodeStatus.Skipped)]
    public async Task Trigger_rules_decide_a_child_of_one_failed_and_one_succeeded_parent(TriggerRule rule, NodeStatus expected)
    {
        var probe = new Probe();
        var host = await StartAsync(nova => nova
            .AddHandler("probe", probe.Handle)
            .AddHandler("fail", (_, _) => throw new PermanentNodeException("boom"))
            .AddWorkflow(Flow("rules").OnFailure(FailureMode.CompleteBranches)
                .Node("ok", "probe")
                .Node("bad", "fail")
                .Node("child", "probe", n => n.DependsOn("ok", "bad").Trigger(rule))
                .Node("grandchild", "probe", n => n.DependsOn("child"))
                .Build()));
        var id = await host.Client.StartAsync("rules");
        var result = await Finished(host, id);
        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Equal(expected, StatusOf(result, "child"));

        // Skipped propagates: the grandchild (AllSucceeded) of a skipped node is skipped too.
        Assert.Equal(expected == NodeStatus.Skipped ? NodeStatus.Skipped : NodeStatus.Succeeded, StatusOf(result, "grandchild"));
    }

    [Fact]
    public async Task Conditional_edges_in_csharp_and_json_take_one_branch_and_skip_the_other()
    {
        var probe = new Probe();
        var json = WorkflowJson.Load("""
        {
          "name": "route", "version": 1,
          "nodes": [ { "id": "score", "handler": "score" }, { "id": "high", "handler": "probe" }, { "id": "low", "handler": "probe" },
                     { "id": "csharp", "handler": "probe" }, { "id": "after-low", "handler": "probe" } ],
          "edges": [ { "source": "score", "target": "high", "condition": { "path": "$.value", "op": "GreaterThan", "value": 50 } },
                     { "source": "score", "target": "low", "condition": { "path": "$.value", "op": "LessThanOrEqual", "value": 50 } },
                     { "source": "low", "target": "after-low" } ]
        }
        """);
        var definition = new WorkflowDefinition(json.Name, json.Version, json.Nodes, json.Edges.Append(new EdgeDefinition("score", "csharp", EdgeCondition.When(o => o?.GetProperty("value").GetInt32() == 80))));
        var host = await StartAsync(nova => nova
            .AddHandler("probe", probe.Handle)
            .AddHandler<JsonElement, object>("score", (_, _, _) => ValueTask.FromResult<object>(new { value = 80 }))
            .AddWorkflow(definition));
        var result = await host.Client.RunAsync("route", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(NodeStatus.Succeeded, StatusOf(result, "high"));
        Assert.Equal(NodeStatus.Succeeded, StatusOf(result, "csharp"));
        Assert.Equal(NodeStatus.Skipped, StatusOf(result, "low"));
        Assert.Equal(NodeStatus.Skipped, StatusOf(result, "after-low"));
        Assert.Equal(0, probe.Calls("low"));
    }

    [Fact]
    public async Task Progress_and_running_nodes_are_visible_while_it_runs()
    {
        var probe = new Probe();
        probe.Hold("b");
        var host = await StartAsync(probe, Flow("progress").Node("a", "probe").Node("b", "probe", n => n.DependsOn("a")).Node("c", "probe", n => n.DependsOn("b")).Node("d", "probe", n => n.DependsOn("c")).Build());
        var id = await host.Client.StartAsync("progress");
        await probe.Entered("b");
        var snapshot = await host.Client.GetAsync(id);
        Assert.Equal(new ExecutionProgress(1, 4), snapshot.Progress);
        Assert.Equal(25, snapshot.Progress.Percent);
        Assert.Equal("b", Assert.Single(snapshot.RunningNodes).Id);
        Assert.Equal(ExecutionStatus.Running, snapshot.Status);
        probe.Open("b");
        Assert.Equal(new ExecutionProgress(4, 4), (await Finished(host, id)).Progress);
    }

    [Fact]
    public async Task Watch_streams_events_in_order_until_the_terminal_one_while_a_waiter_for_the_outcome_gets_it_too()
    {
        var probe = new Probe();
        var host = await StartAsync(probe, Flow("watch").Node("a", "probe").Node("b", "probe", n => n.DependsOn("a")).Build());
        probe.Hold("a");
        var id = await host.Client.StartAsync("watch");
        var outcome = host.Client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(20));
        var events = new List<WorkflowEvent>();
        var watching = Task.Run(async () =>
        {
            await foreach (var e in host.Client.WatchAsync(id))
            {
                events.Add(e);
            }
        });
        await probe.Entered("a");
        probe.Open("a");
        await watching.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(ExecutionStatus.Succeeded, (await outcome).Status);
        Assert.True(events[^1].IsTerminal);
        Assert.Equal(EventTypes.ExecutionSucceeded, events[^1].Type);
        Assert.Single(events, e => e.IsTerminal);
        var succeeded = events.Where(e => e.Type == EventTypes.NodeSucceeded).Select(e => e.NodeId).ToList();
        if (succeeded.Count == 2)
        {
            Assert.Equal(["a", "b"], succeeded);
        }
    }

    [Fact]
    public async Task Watch_of_a_finished_execution_yields_its_terminal_event()
    {
        var probe = new Probe();
        var host = await StartAsync(probe, Flow("done").Node("a", "probe").Build());
        var result = await host.Client.RunAsync("done", timeout: TimeSpan.FromSeconds(20));
        var events = new List<WorkflowEvent>();
        await foreach (var e in host.Client.WatchAsync(result.Id))
        {
            events.Add(e);
        }

        Assert.Equal(EventTypes.ExecutionSucceeded, Assert.Single(events).Type);
    }

    [Fact]
    public async Task Unknown_workflow_and_execution_ids_give_typed_errors_and_change_nothing()
    {
        var probe = new Probe();
        var host = await StartAsync(probe, Flow("known").Node("a", "probe").Build());
        var notFound = await Assert.ThrowsAsync<WorkflowNotFoundException>(() => host.Client.StartAsync("unknown"));
        Assert.Contains("unknown", notFound.Message);
        await Assert.ThrowsAsync<WorkflowNotFoundException>(() => host.Client.StartAsync("known", options: new StartOptions { Version = 7 }));
        var missing = Guid.CreateVersion7();
        await Assert.ThrowsAsync<ExecutionNotFoundException>(() => host.Client.GetAsync(missing));
        await Assert.ThrowsAsync<ExecutionNotFoundException>(() => host.Client.CancelAsync(missing));
        await Assert.ThrowsAsync<ExecutionNotFoundException>(() => host.Client.PauseAsync(missing));
        await Assert.ThrowsAsync<ExecutionNotFoundException>(() => host.Client.GetHistoryAsync(missing));
        await Assert.ThrowsAsync<ExecutionNotFoundException>(async () =>
        {
            await foreach (var _ in host.Client.WatchAsync(missing))
            {
            }
        });
        Assert.Empty(await host.Client.ListAsync(new()));
    }

    [Fact]
    public async Task Oversize_or_unserializable_input_is_refused_and_nothing_is_created()
    {
        var probe = new Probe();
        var host = await StartAsync(probe, Flow("small").Node("a", "probe").Build(), options: o => o.MaxPayloadBytes = 1024);
        var big = await Assert.ThrowsAsync<InvalidPayloadException>(() => host.Client.StartAsync("small", new { data = new string('x', 2000) }));
        Assert.Contains("MaxPayloadBytes", big.Message);
        var cyclic = new Dictionary<string, object>();
        cyclic["self"] = cyclic;
        await Assert.ThrowsAsync<InvalidPayloadException>(() => host.Client.StartAsync("small", cyclic));
        Assert.Empty(await host.Client.ListAsync(new()));
    }

    [Fact]
    public async Task RunAsync_throws_with_the_snapshot_when_the_execution_fails()
    {
        var host = await StartAsync(nova => nova
            .AddHandler("fail", (_, _) => throw new InvalidOperationException("bad state"))
            .AddWorkflow(Flow("failing").Node("a", "fail").Build()));
        var ex = await Assert.ThrowsAsync<WorkflowExecutionException>(() => host.Client.RunAsync("failing", timeout: TimeSpan.FromSeconds(20)));
        Assert.Equal(ExecutionStatus.Failed, ex.Snapshot.Status);
        Assert.Equal("InvalidOperationException", ex.Snapshot.Error!.Type);
        Assert.Equal(ErrorClass.Permanent, ex.Snapshot.Error.Class);
    }

    [Fact]
    public async Task WaitForCompletion_times_out_with_a_TimeoutException()
    {
        var probe = new Probe();
        probe.Hold("a");
        var host = await StartAsync(probe, Flow("slow").Node("a", "probe").Build());
        var id = await host.Client.StartAsync("slow");
        await Assert.ThrowsAsync<TimeoutException>(() => host.Client.WaitForCompletionAsync(id, TimeSpan.FromMilliseconds(200)));
        probe.Open("a");
        Assert.Equal(ExecutionStatus.Succeeded, (await Finished(host, id)).Status);
    }

    [Fact]
    public async Task Typed_handler_whose_input_does_not_deserialize_fails_permanently_without_retry()
    {
        var calls = 0;
        var host = await StartAsync(nova => nova
            .AddHandler<int, int>("number", (x, _, _) =>
            {
                Interlocked.Increment(ref calls);
                return ValueTask.FromResult(x);
            })
            .AddWorkflow(Flow("typed").Node("a", "number").Build()));
        var id = await host.Client.StartAsync("typed", new { not = "a number" });
        var result = await Finished(host, id);
        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Equal(nameof(NodeInputException), result.Error!.Type);
        Assert.Equal(0, calls);
        Assert.Single(await host.Client.GetHistoryAsync(id));
    }

    [Fact]
    public async Task Handler_classes_are_resolved_from_a_scope_per_node_run()
    {
        var host = await StartAsync(nova =>
        {
            nova.Services.AddScopedCounter();
            nova.AddHandler<ScopedHandler>("scoped").AddWorkflow(Flow("scopes").Node("a", "scoped").Node("b", "scoped").Build());
        });
        var result = await host.Client.RunAsync("scopes", timeout: TimeSpan.FromSeconds(20));
        var a = result.Nodes.Single(n => n.Id == "a").Output!.Value.GetString();
        var b = result.Nodes.Single(n => n.Id == "b").Output!.Value.GetString();
        Assert.NotEqual(a, b);
    }

    [Fact]
    public async Task Worker_ids_and_error_messages_with_quotes_separators_and_line_breaks_read_back_unchanged()
    {
        const string worker = "rack \"7\" | host\\b é";
        const string message = "line one\n\"quoted\" | back\\slash \t é";
        var host = await StartAsync(
            nova => nova
                .AddHandler("boom", (_, _) => throw new PermanentNodeException(message))
                .AddWorkflow(Flow("text").Node("a", "boom").Build()),
            options: o => o.WorkerId = worker);

        var id = await host.Client.StartAsync("text");
        var result = await Finished(host, id);

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        var node = Assert.Single(result.Nodes);
        Assert.Equal(NodeStatus.Failed, node.Status);
        Assert.Equal(worker, node.WorkerId);
        Assert.Equal(message, node.Error!.Message);
        var run = Assert.Single(await host.Client.GetHistoryAsync(id));
        Assert.Equal(NodeRunStatus.Failed, run.Status);
        Assert.Equal(worker, run.WorkerId);
        Assert.Equal(message, run.ErrorMessage);
        Assert.Equal(nameof(PermanentNodeException), run.ErrorType);
    }

    [Fact]
    public async Task History_records_every_attempt_and_handler_stats_answer_the_monitoring_questions()
    {
        var attempts = new ConcurrentDictionary<string, int>();
        var host = await StartAsync(nova => nova
            .AddHandler("flaky", (ctx, _) => attempts.AddOrUpdate(ctx.NodeId, 1, (_, n) => n + 1) == 1
                ? throw new TransientNodeException("try again")
                : ValueTask.FromResult<JsonElement?>(null))
            .AddHandler("ok", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(Flow("hist").DefaultRetry(RetryPolicy.Default with { InitialDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(10) })
                .Node("a", "flaky").Node("b", "ok", n => n.DependsOn("a")).Build()));
        var result = await host.Client.RunAsync("hist", timeout: TimeSpan.FromSeconds(20));
        var history = await host.Client.GetHistoryAsync(result.Id);
        Assert.Equal(3, history.Count);
        var first = history.Single(r => r.NodeId == "a" && r.Attempt == 1);
        Assert.Equal(NodeRunStatus.Retrying, first.Status);
        Assert.Equal(nameof(TransientNodeException), first.ErrorType);
        Assert.Equal("try again", first.ErrorMessage);
        Assert.Equal(NodeRunStatus.Succeeded, history.Single(r => r.NodeId == "a" && r.Attempt == 2).Status);
        Assert.All(history, r =>
        {
            Assert.NotNull(r.WorkerId);
            Assert.True(r.EndedAt >= r.StartedAt);
            Assert.Equal(r.EndedAt - r.StartedAt, r.Duration);
        });

        var stats = await host.Client.GetHandlerStatsAsync(TimeSpan.FromHours(1));
        var flaky = stats.Single(s => s.Handler == "flaky");
        Assert.Equal(2, flaky.Runs);
        Assert.Equal(1, flaky.Failures);
        Assert.Equal(0.5, flaky.FailureRate);
        Assert.Equal(0, stats.Single(s => s.Handler == "ok").FailureRate);
    }

    [Fact]
    public async Task Each_error_class_is_handled_by_its_rule()
    {
        var calls = new ConcurrentDictionary<string, int>();
        var host = await StartAsync(
            nova => nova
                .AddHandler("throw", (ctx, _) =>
                {
                    calls.AddOrUpdate(ctx.NodeId, 1, (_, n) => n + 1);
                    throw ctx.NodeId switch
                    {
                        "transient" => new TransientNodeException("t"),
                        "timeout" => new TimeoutException("t"),
                        "io" => new IOException("t"),
                        "permanent" => new PermanentNodeException("p"),
                        "custom" => new FormatException("classified transient by the host"),
                        _ => new InvalidOperationException("unknown kinds are permanent"),
                    };
                })
                .AddWorkflow(Flow("errors").OnFailure(FailureMode.CompleteBranches)
                    .DefaultRetry(RetryPolicy.Default with { MaxAttempts = 3, InitialDelay = TimeSpan.FromMilliseconds(5), MaxDelay = TimeSpan.FromMilliseconds(5) })
                    .Node("transient", "throw").Node("timeout", "throw").Node("io", "throw").Node("permanent", "throw").Node("custom", "throw").Node("other", "throw")
                    .Build()),
            options: o => o.ErrorClassifier = ex => ex is FormatException ? ErrorClass.Transient : null);
        var id = await host.Client.StartAsync("errors");
        var result = await Finished(host, id);
        Assert.Equal(ExecutionStatus.Failed, result.Status);
        foreach (var transient in new[] { "transient", "timeout", "io", "custom" })
        {
            Assert.Equal(3, calls[transient]);
        }

        Assert.Equal(1, calls["permanent"]);
        Assert.Equal(1, calls["other"]);
        Assert.Equal(ErrorClass.Permanent, result.Nodes.Single(n => n.Id == "other").Error!.Class);
    }

    [Fact]
    public async Task Soft_time_limit_cancels_the_token_and_hard_limit_abandons_the_attempt_as_a_timeout()
    {
        var softCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var host = await StartAsync(nova => nova
            .AddHandler("soft", async (ctx, ct) =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    softCancelled.TrySetResult();
                }

                return Json("finished after the soft limit");
            })
            .AddHandler("hard", async (_, _) =>
            {
                await Task.Delay(TimeSpan.FromSeconds(30), CancellationToken.None);
                return null;
            })
            .AddWorkflow(Flow("limits").OnFailure(FailureMode.CompleteBranches)
                .Node("soft", "soft", n => n.TimeLimit(TimeSpan.FromMilliseconds(100)))
                .Node("hard", "hard", n => n.TimeLimit(null, TimeSpan.FromMilliseconds(150)).Retry(RetryPolicy.None))
                .Build()));
        var id = await host.Client.StartAsync("limits");
        var result = await Finished(host, id);
        await softCancelled.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(NodeStatus.Succeeded, StatusOf(result, "soft"));
        Assert.Equal(NodeStatus.Failed, StatusOf(result, "hard"));
        var hardRun = Assert.Single(await host.Client.GetHistoryAsync(id), r => r.NodeId == "hard");
        Assert.Equal(NodeRunStatus.TimedOut, hardRun.Status);
        Assert.True(hardRun.Duration < TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Short_backoffs_retry_in_process_and_every_attempt_is_recorded()
    {
        var calls = 0;
        var host = await StartAsync(nova => nova
            .AddHandler("flaky", (_, _) => Interlocked.Increment(ref calls) < 3 ? throw new TimeoutException("slow upstream") : ValueTask.FromResult<JsonElement?>(Json("ok")))
            .AddWorkflow(Flow("inproc").Node("a", "flaky", n => n.Retry(r => r with { MaxAttempts = 5, InitialDelay = TimeSpan.FromMilliseconds(1), InProcessThreshold = TimeSpan.FromMilliseconds(50) })).Build()));
        var result = await host.Client.RunAsync("inproc", timeout: TimeSpan.FromSeconds(20));
        var history = await host.Client.GetHistoryAsync(result.Id);
        Assert.Equal([1, 2, 3], history.Select(r => r.Attempt));
        Assert.Equal([NodeRunStatus.Retrying, NodeRunStatus.Retrying, NodeRunStatus.Succeeded], history.Select(r => r.Status));
        Assert.Equal(3, result.Nodes.Single().Attempt);
    }
}

internal static class ScopedCounterExtensions
{
    public static void AddScopedCounter(this Microsoft.Extensions.DependencyInjection.IServiceCollection services) =>
        Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddScoped<ScopeMarker>(services);
}

internal sealed class ScopeMarker
{
    public string Id { get; } = Guid.NewGuid().ToString("N");
}

internal sealed class ScopedHandler(ScopeMarker marker) : INodeHandler
{
    public ValueTask<JsonElement?> ExecuteAsync(NodeContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult<JsonElement?>(JsonSerializer.SerializeToElement(marker.Id));
}
