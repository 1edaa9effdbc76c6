// Invoice processing on the in-memory default: fetch → (parse ∥ classify) → validate → store.
// "parse" fails transiently on its first attempt and is retried with a durable backoff.
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Nova.Workflow;
using Nova.Workflow.Samples.Console;

var builder = Host.CreateApplicationBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddSingleton<FlakyOnce>();
builder.Services.AddNovaWorkflows(nova => nova
    .AddHandler<FetchInvoice>("invoice.fetch")
    .AddHandler<ParseInvoice>("invoice.parse")
    .AddHandler<ClassifyInvoice>("invoice.classify")
    .AddHandler<ValidateInvoice>("invoice.validate")
    .AddHandler<StoreInvoice>("invoice.store")
    .AddWorkflow(new WorkflowBuilder("invoice-processing")
        .Node("fetch", "invoice.fetch")
        .Node("parse", "invoice.parse", n => n.DependsOn("fetch")
            .Retry(r => r with { MaxAttempts = 3, InitialDelay = TimeSpan.FromMilliseconds(400), InProcessThreshold = TimeSpan.Zero }))
        .Node("classify", "invoice.classify", n => n.DependsOn("fetch"))
        .Node("validate", "invoice.validate", n => n.DependsOn("parse", "classify"))
        .Node("store", "invoice.store", n => n.DependsOn("validate"))
        .Build())
    .AddWorker(w => w.Queue("default", concurrency: 4)));

using var host = builder.Build();
await host.StartAsync();
var client = host.Services.GetRequiredService<IWorkflowClient>();

var id = await client.StartAsync("invoice-processing", new { InvoiceId = "INV-2026-0042", Source = "mailbox" });
Console.WriteLine($"Started execution {id}");
await foreach (var e in client.WatchAsync(id))
{
    if (e.Type is EventTypes.NodeQueued)
    {
        continue;
    }

    var node = e.NodeId is null ? "" : $" {e.NodeId,-9}";
    var percent = e.Type == EventTypes.NodeProgress ? "  ...  " : $"{e.Progress.Percent,5:0.0}%";
    var note = e.Message is null ? "" : $"  ({e.Message})";
    Console.WriteLine($"  [{percent}] {e.Type,-20}{node} attempt {e.Attempt}{note}");
}

var result = await client.GetAsync(id);
Console.WriteLine();
Console.WriteLine($"Execution {result.Status}; output: {result.Output?.GetRawText()}");
Console.WriteLine();
Console.WriteLine($"{"node",-9} {"handler",-17} {"attempt",7} {"status",-9} {"duration",10} {"worker",-12} error");
foreach (var run in await client.GetHistoryAsync(id))
{
    Console.WriteLine($"{run.NodeId,-9} {run.Handler,-17} {run.Attempt,7} {run.Status,-9} {run.Duration.TotalMilliseconds,8:0.0}ms {run.WorkerId?.Split(':')[0],-12} {run.ErrorType} {run.ErrorMessage}");
}

await host.StopAsync();
return result.Status == ExecutionStatus.Succeeded ? 0 : 1;
