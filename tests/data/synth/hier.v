module leaf(input clk, input [7:0] a, output reg [7:0] q); always @(posedge clk) q <= a + 8'd1; endmodule
module top(input clk, input [7:0] a, output [7:0] q); wire [7:0] m; leaf u0(clk, a, m); leaf u1(clk, m, q); endmodule
